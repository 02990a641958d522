"""Software private keys as Signers: EC P-256 (ES256) and RSA (RS256), from DER or PEM.

    key = keys.load_private_key(open("device.der", "rb").read())   # or PEM text/bytes
    key.algorithm                 # "ES256" or "RS256"
    key.sign(message)             # ES256: raw R||S, 64 bytes; RS256: len(n) bytes
    key.public_key_der()          # SubjectPublicKeyInfo DER
    keys.fingerprint(key.public_key_der())   # lowercase hex SHA-256: akenza's "kid"
    key = keys.generate_p256(); open("device.der", "wb").write(key.to_der())

Layouts read: SEC1 ``EC PRIVATE KEY`` (``openssl ec -outform DER``), PKCS#1 ``RSA PRIVATE
KEY`` and unencrypted PKCS#8 ``PRIVATE KEY`` holding either. Encrypted keys are refused: a
device has nowhere safe to keep the passphrase, so decrypt once on the host instead.
The arithmetic is tether.p256 / tether.rsa (pure Python, not constant-time: see there).
RSA keys are tether.rsa.RSAKey, in the component tether-rsa: an image without it refuses
them, saying so. The loaders are tether.keyload (component tether-keyload): an image that
only makes its own key (Astarte: generate_p256, to_pem, a CSR) leaves them out, and
load_private_key / load_der there raise CredentialError naming the component.
"""

from hashlib import sha256

from tether import der
from tether.errors import CredentialError

_OID_EC = "1.2.840.10045.2.1"  # id-ecPublicKey
_OID_P256 = "1.2.840.10045.3.1.7"  # prime256v1 / secp256r1


class P256Key:
    """An EC P-256 private key (scalar d) that signs ES256."""

    algorithm = "ES256"

    def __init__(self, d, public=None):
        from tether import p256

        if not 0 < d < p256.N:
            raise CredentialError("EC private key out of range")
        self._d = d
        self._stored_public = public  # the point the file carried, checked when first used
        self._point = None

    def public_point(self):
        """The uncompressed public point 04||X||Y (65 bytes), computed once."""
        if self._point is None:
            from tether import p256

            x, y = p256.public_point(self._d)
            point = p256.encode_point(x, y)
            if self._stored_public is not None and self._stored_public != point:
                raise CredentialError(
                    "EC key is corrupt: its public key does not match the private"
                )
            self._point = point
        return self._point

    def sign(self, message):
        """ECDSA P-256 over SHA-256(message), deterministic k; raw R||S, 64 bytes."""
        from tether import p256

        r, s = p256.sign_digest(self._d, sha256(message).digest())
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def public_key_der(self):
        return der.seq(
            der.seq(der.oid(_OID_EC), der.oid(_OID_P256)), der.bitstring(self.public_point())
        )

    def to_der(self):
        """SEC1 ECPrivateKey DER, as ``openssl ec -outform DER`` writes it."""
        return der.seq(
            der.integer(1),
            der.octets(self._d.to_bytes(32, "big")),
            der.explicit(0, der.oid(_OID_P256)),
            der.explicit(1, der.bitstring(self.public_point())),
        )

    def to_pem(self):
        return der.pem_encode("EC PRIVATE KEY", self.to_der())


def fingerprint(spki_der):
    """Lowercase hex SHA-256 of a SubjectPublicKeyInfo DER (akenza's JWT "kid")."""
    from binascii import hexlify

    return hexlify(sha256(spki_der).digest()).decode()


def generate_p256():
    """A new P-256 key from os.urandom (store it with to_der())."""
    from tether import p256

    return P256Key(p256.generate_private())


# ---------------------------------------------------------------- loading (tether.keyload)


def _keyload():
    try:
        from tether import keyload
    except ImportError:  # a board image that only makes its own key
        raise CredentialError("loading a key: add the tether-keyload component to the image")
    return keyload


def load_der(buf):
    """A P256Key or RSAKey from a DER private key (SEC1, PKCS#1 or PKCS#8)."""
    return _keyload().load_der(buf, P256Key)


def load_private_key(data):
    """A Signer (P256Key or RSAKey) from a private key as DER bytes or PEM text/bytes.

    Raises tether.errors.CredentialError (a ValueError) saying what to fix: corrupt,
    encrypted, an unsupported curve or key type.
    """
    return _keyload().load_private_key(data, P256Key)
