"""Signers: whatever holds a private key and can sign a JWT, a CSR or a challenge with it.

    signer.algorithm          # "ES256" or "RS256"
    signer.sign(message)      # ES256: raw R||S (64 bytes, JWS form) over SHA-256(message);
                              # RS256: PKCS#1 v1.5 SHA-256, len(n) bytes
    signer.public_key_der()   # SubjectPublicKeyInfo DER

Software keys are tether.keys.P256Key / RSAKey (tether.keys.load_private_key). Here: the
SE05x secure element (Portenta H7, Nicla Vision), and a PKCS#11 token on CPython.
tether.creds.load_signer(src) picks the right one for a path, PEM, `se05x:` or `pkcs11:`.
"""

from tether.errors import CredentialError

_ES256_HALF = 32  # bytes of R and of S in a P-256 signature


class Signer:
    """The interface (and a base class): subclasses set algorithm and implement both."""

    algorithm = "ES256"

    def sign(self, message):
        raise NotImplementedError

    def public_key_der(self):
        raise NotImplementedError


def ecdsa_raw(sig, size=_ES256_HALF):
    """R||S (2 * size bytes) from an ASN.1 DER ECDSA-Sig-Value SEQUENCE { r INTEGER, s INTEGER },
    what the SE05x, OpenSSL and mbedTLS return. Bounded: anything else is CredentialError."""
    from tether import der

    sig = bytes(sig)
    try:
        items = der.whole(sig)
        if len(items) != 2:
            raise ValueError("not two integers")
        out = b""
        for item in items:
            der.expect(item, der.INTEGER)
            v = der.int_bytes(sig, item[1], item[2])
            if len(v) > size or sig[item[1]] & 0x80:
                raise ValueError("integer out of range")
            out += bytes(size - len(v)) + v
    except ValueError as exc:
        raise CredentialError("the signer returned a malformed ECDSA signature (%s)" % exc)
    return out


def _sha256(message):
    from hashlib import sha256

    return sha256(message).digest()


class SE05xSigner(Signer):
    """ES256 with a P-256 key object inside an SE05x; the key never leaves the chip.

    key: the object ID (int) or `se05x:token=0x00000064`. se: a tether.hal.se05x
    SecureElement (default: the board's). cert: the key's certificate (DER bytes, an
    `se05x:` reference or an object ID), where public_key_der() comes from: a key object's
    secret part cannot be read, and this driver offers no call for its public part.
    I2C failures stay OSError (worth a retry); a missing or wrong object is CredentialError.
    """

    algorithm = "ES256"

    def __init__(self, key, se=None, cert=None):
        from tether.hal import se05x

        self.oid = key if isinstance(key, int) else _oid(key, "key")
        self._se = se or se05x.get_secure_element()
        self._cert = cert

    def sign(self, message):
        try:
            sig = self._se.sign(self.oid, _sha256(message))
        except (RuntimeError, ValueError) as exc:
            raise CredentialError("SE05x key 0x%08x cannot sign: %s" % (self.oid, exc))
        return ecdsa_raw(sig)

    def public_key_der(self):
        cert = self._cert
        if cert is None:
            raise CredentialError(
                "SE05x key 0x%08x: its public key comes from its certificate; pass cert= "
                "(e.g. se05x:token=0x00000065 or the DER bytes)" % self.oid
            )
        if isinstance(cert, str):
            cert = _oid(cert, "cert")
        if isinstance(cert, int):
            try:
                cert = self._se.read_certificate(cert)
            except (OSError, RuntimeError) as exc:
                raise CredentialError("SE05x certificate cannot be read: %s" % exc)
            self._cert = cert  # read once
        from tether.certs import cert_spki

        return cert_spki(cert)


def _oid(ref, what):
    from tether.hal import se05x

    try:
        oid = se05x.parse_token(ref)
    except ValueError as exc:
        raise CredentialError("%s: %s" % (what, exc))
    if oid is None:
        raise CredentialError("%s: expected se05x:token=0x<8 hex digits> or an object ID" % what)
    return oid


class Pkcs11Signer(Signer):
    """CPython only: ES256 or RS256 with a key inside a PKCS#11 token (HSM, smart card,
    SoftHSM2), through OpenSSL's PKCS#11 engine (tether.hsm). The PIN may be given or be a
    `pin-value` in the URI; it is never logged nor put in a message."""

    def __init__(self, uri, module_path=None, pin=None, engine_path=None):
        from tether.compat import MICROPYTHON

        if MICROPYTHON:
            raise CredentialError("pkcs11: keys need CPython with the hsm extra")
        from tether import hsm

        self._key = hsm.TokenKey(uri, module_path, pin, engine_path)
        self.algorithm = self._key.algorithm

    def sign(self, message):
        sig = self._key.sign(message)
        return ecdsa_raw(sig) if self.algorithm == "ES256" else sig

    def public_key_der(self):
        return self._key.public_key_der()
