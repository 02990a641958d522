"""What the hub and DPS clients share, light enough for DPS to import alone: the SDK's
exception for a failed connect, and the TLS context (the embedded Azure roots by default).
"""

from tether.azure.exceptions import ClientError, ConnectionFailedError, CredentialError
from tether.compat import build_once


def refused(exc):
    """The SDK's exception for a failed connect (CONNACK 4/5: CredentialError)."""
    if isinstance(exc, ClientError):
        return exc
    code = getattr(exc, "code", None)
    if type(exc).__name__ == "MQTTConnectError" and code in (4, 5):
        return CredentialError("the hub refused the credentials (CONNACK %d)" % code)
    if type(exc).__name__ == "CredentialError":  # tether.errors: a key or file unusable
        return CredentialError(str(exc))
    return ConnectionFailedError("%s: %s" % (type(exc).__name__, exc))


def tls_context(ca, x509):
    """A verifying context trusting `ca` (default: the embedded Azure roots), presenting
    the X509's certificate and key when given."""
    from tether import creds

    if ca is None:
        from tether.azure.roots import ROOTS

        ca = list(ROOTS)
    if x509 is None:
        return creds.tls_context(ca=ca)
    if getattr(x509, "pass_phrase", None):
        raise CredentialError(
            "encrypted keys are not supported: decrypt it once on a host with "
            "`openssl pkey -in key.pem -out key.der -outform DER`"
        )
    return creds.tls_context(ca=ca, cert=x509.certificate_file, key=x509.key_file)


def tls_context_once(ca, x509):
    """tls_context() for a context built once and used for one connection (DPS): on
    MicroPython the tether modules building it imported are dropped from sys.modules again,
    so they are freed with the context instead of staying for the hub's lifetime (about
    20 KB of the heap from .mpy). The cloud base does the same for the hub's context."""
    return build_once(tls_context, ca, x509)
