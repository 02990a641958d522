"""The files of Astarte's TLS (the CA, the device certificate and key) as the port's TLS
takes them: shared by the resident tether.astarte.sync (the MQTT context) and the pairing
stage's tether.astarte.certificate, which a board drops again (so neither imports the
other for these).

- read_ca(ca): CA bytes from bytes, PEM text or a path.
- pem_ders(data): the DER of each PEM block, without tether.der or tether.certs.
- native_context(ca, cert_pem, key_pem, insecure): MicroPython's context from DER alone.
- creds(what): tether.creds, or CredentialError naming tether-certauth when the image
  lacks it (an SE05x key needs it; Astarte's own key and certificate do not).
"""

from tether.errors import CredentialError


def read_ca(ca):
    """CA bytes (PEM or DER) from bytes, PEM text or a file path; None stays None."""
    if ca is None or isinstance(ca, (bytes, bytearray)):
        return ca
    if "-----BEGIN" in ca:
        return ca.encode()
    with open(ca, "rb") as f:
        return f.read()


def pem_ders(data):
    """The DER of every PEM block in data (DER bytes as they are); ValueError if corrupt.
    Without tether.der/certs: on a board the pairing stage and the MQTT context are built
    from these by the native TLS module alone."""
    if data[:1] == b"0":
        return [bytes(data)]
    from binascii import a2b_base64

    out = []
    for part in bytes(data).split(b"-----BEGIN ")[1:]:
        body = part.split(b"-----", 1)[1].split(b"-----END")[0]
        if b":" in body:  # RFC 1421 headers: an encrypted key, for tlsctx to explain
            raise ValueError("PEM with headers")
        out.append(a2b_base64(b"".join(body.split())))
    return out


def native_context(ca, cert_pem=None, key_pem=None, insecure=False):
    """MicroPython: a context built from DER by the native TLS module alone (no tether.certs
    or tether.der: an image without certificate authentication connects, and ~25 KB of
    code stay off the heap), or None when the PEM does not decode or there is no CA to
    verify with (tlsctx then says what is wrong). insecure: no verification, warned at
    every connection (tlsctx's own MicroPython context, which takes DER as it is)."""
    try:
        cas = pem_ders(ca) if ca else []
        cert = key = None
        if cert_pem is not None:
            cert = pem_ders(cert_pem)[0]
            key = pem_ders(key_pem)[0]
    except (ValueError, IndexError, TypeError):
        return None
    if insecure:
        from tether.tlsctx import mp_context

        return mp_context(cas, cert, key, True)
    if not cas:
        return None
    from tether.cloud.tls import verifying_context

    return verifying_context(cas, cert, key)


def creds(what):
    """tether.creds (an SE05x key's signer and TLS context), or CredentialError naming
    the component when the image has no certificate authentication."""
    try:
        from tether import creds
    except ImportError:
        raise CredentialError(
            "%s: an SE05x key needs certificate authentication: add the tether-certauth "
            "component" % what
        )
    return creds
