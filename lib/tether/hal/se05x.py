"""The NXP SE05x secure element (Portenta H7, Nicla Vision): certificates and signatures.

The key never leaves the chip. TLS gets a *reference key*: a well-formed P-256 private key
whose secret scalar is a marker plus the SE object ID; mbedTLS hands that scalar to the
port's `ecdsa_sign_callback`, which recognises the marker and asks the SE to sign.

The driver is the port's `se05x` module (frozen into Arduino's stm32 firmware). Importing
it claims the SE's enable pin, so it is imported and constructed on first use only:
importing this module touches no pin.
"""

from tether.compat import const

_P256_LEN = const(32)
# Marks a scalar as a reference to an SE object (the NXP "reference key" convention).
REF_MAGIC = b"\xa5\xa6\xb5\xb6\xa5\xa6\xb5\xb6"

# PKCS#8 PrivateKeyInfo { 0, {id-ecPublicKey, prime256v1}, OCTET STRING ECPrivateKey { 1, d } }
# with everything but the 32-byte scalar d fixed.
_REF_KEY_HEAD = (
    b"\x30\x41\x02\x01\x00\x30\x13\x06\x07\x2a\x86\x48\xce\x3d\x02\x01"
    b"\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07\x04\x27\x30\x25\x02\x01\x01\x04\x20"
)


class SE05xError(OSError):
    pass


def parse_token(uri):
    """The object ID in 'se05x:token=0x00000064'; None when uri is not an SE05x token."""
    if not isinstance(uri, str) or not uri.startswith("se05x:"):
        return None
    rest = uri[6:]
    if not rest.startswith("token="):
        raise ValueError("SE05x reference %r: expected se05x:token=0x<8 hex digits>" % uri)
    try:
        oid = int(rest[6:], 16) if rest[6:8] in ("0x", "0X") else int(rest[6:])
    except ValueError:
        raise ValueError("SE05x reference %r: the token is not a number" % uri)
    if not 0 < oid < 0x100000000:
        raise ValueError("SE05x reference %r: object ID out of range" % uri)
    return oid


def reference_key(oid):
    """DER private key standing for SE object `oid` (see the module docstring)."""
    d = REF_MAGIC + bytes(_P256_LEN - len(REF_MAGIC) - 4) + oid.to_bytes(4, "big")
    return _REF_KEY_HEAD + d


def reference_oid(scalar):
    """The SE object a reference scalar names, or None for an ordinary key."""
    scalar = bytes(scalar)
    if len(scalar) != _P256_LEN or scalar[: len(REF_MAGIC)] != REF_MAGIC:
        return None
    return int.from_bytes(scalar[-4:], "big")


def der_length(head):
    """Total length of the DER item starting with `head` (at least 4 bytes)."""
    if len(head) < 2 or head[0] != 0x30:
        raise SE05xError(5, "SE object does not hold a DER certificate")
    n = head[1]
    if n < 0x80:
        return 2 + n
    k = n & 0x7F
    if k == 0 or k > 2 or len(head) < 2 + k:
        raise SE05xError(5, "SE object does not hold a DER certificate")
    return 2 + k + int.from_bytes(bytes(head[2 : 2 + k]), "big")


class SecureElement:
    """Tether's view of an SE05x. `driver`: an object with the port driver's API
    (exists(oid), read(oid, size), sign(oid, digest)); None builds the port's on first use."""

    def __init__(self, driver=None):
        self._drv = driver

    def driver(self):
        if self._drv is None:
            try:
                import se05x
            except ImportError:
                raise SE05xError(
                    19, "no se05x driver in this firmware (Portenta H7 / Nicla Vision have it)"
                )
            self._drv = se05x.SE05X()
        return self._drv

    def read_certificate(self, oid):
        """The DER certificate in object `oid`, read with its own length (not a fixed slot
        size: a re-provisioned board may hold a longer or shorter certificate)."""
        drv = self.driver()
        if not drv.exists(oid):
            raise SE05xError(2, "SE object 0x%08x does not exist" % oid)
        total = der_length(drv.read(oid, 4))
        cert = bytes(drv.read(oid, total))
        if len(cert) != total:
            raise SE05xError(5, "SE object 0x%08x: short read" % oid)
        return cert

    def sign(self, oid, digest):
        """ASN.1 DER ECDSA signature of `digest` by key object `oid`."""
        return bytes(self.driver().sign(oid, bytes(digest)))

    def sign_callback(self):
        """A function for tls.SSLContext.ecdsa_sign_callback: signs with the SE when mbedTLS
        offers a reference key, returns None (software signing) for any other key."""

        def callback(scalar, digest):
            oid = reference_oid(scalar)
            if oid is None:
                return None
            return self.sign(oid, digest)

        return callback


_se = None


def get_secure_element():
    global _se
    if _se is None:
        _se = SecureElement()
    return _se


def set_secure_element(se):
    """Install another SE (the unix port's fake, tests); None restores the lazy default."""
    global _se
    _se = se
