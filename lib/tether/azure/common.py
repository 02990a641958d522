"""What the hub and DPS clients share, light enough for DPS to import alone: the SDK's
exception for a failed connect, and the TLS context (the embedded Azure roots by default).
"""

from tether.azure.exceptions import ClientError, ConnectionFailedError, CredentialError
from tether.compat import MICROPYTHON, build_once


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


def _der_list(ca):
    """`ca` as a list of DER certificates when it is DER already (bytes, a list of them, or
    a path to a DER file), else None (PEM: tether.creds parses it)."""
    if isinstance(ca, str) and not ca.startswith("-----"):
        try:
            with open(ca, "rb") as f:
                ca = f.read()
        except OSError:
            return None
    cas = ca if isinstance(ca, (list, tuple)) else [ca]
    for c in cas:
        if not isinstance(c, (bytes, bytearray)) or c[:1] != b"\x30":
            return None
    return list(cas)


def _openssl_list(ca):
    """CPython: `ca` as a list OpenSSL takes as it is (PEM text, DER bytes), else None."""
    cas = ca if isinstance(ca, (list, tuple)) else [ca]
    out = []
    for c in cas:
        if isinstance(c, (bytes, bytearray)) and c[:10] == b"-----BEGIN":
            c = bytes(c).decode()
        if isinstance(c, str) and c.startswith("-----BEGIN"):
            out.append(c)  # a bundle too: OpenSSL loads every certificate in it
        elif isinstance(c, (bytes, bytearray)) and c[:1] == b"\x30":
            out.append(bytes(c))
        else:
            return None  # a path, or something tether.creds explains
    return out


def _openssl_context(cas):
    # CPython with a SAS: OpenSSL parses and checks the roots itself, so the context is
    # made here without tether.creds, certs, der and tlsctx (about 130 KB of code objects,
    # and their import time). Same settings as tlsctx: host name and chain checked, TLS 1.2+.
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    for c in cas:
        try:
            ctx.load_verify_locations(cadata=c)
        except (ssl.SSLError, ValueError) as exc:
            raise CredentialError("CA certificate rejected by OpenSSL: %s" % exc)
    return ctx


def tls_context(ca, x509):
    """A verifying context trusting `ca` (default: the embedded Azure roots), presenting
    the X509's certificate and key when given."""
    if ca is None:
        from tether.azure.roots import ROOTS

        ca = list(ROOTS)
    if x509 is None and MICROPYTHON:
        cas = _der_list(ca)
        if cas is not None:
            # SAS with DER roots (the embedded ones, or the settings' ca.der): straight to
            # the port's TLS context, without tether.creds / der / tlsctx, whose code and
            # qstrs (never freed on a port) the board would carry for one context.
            from tether.cloud.tls import verifying_context

            return verifying_context(cas)
    if x509 is None and not MICROPYTHON:
        cas = _openssl_list(ca)
        if cas is not None:
            return _openssl_context(cas)
    try:
        from tether import creds
    except ImportError:  # an image without tether-certauth: DER CAs only
        from tether import nocert as creds

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
