"""RSA PKCS#1 v1.5 signatures with SHA-256 (RFC 8017 8.2, JWS RS256), by the CRT.

    key = rsa.RSAPrivate(n, e, d, p, q, dp, dq, qinv)   # tether.keys builds it from DER
    sig = key.sign_pkcs1_sha256(message)                # exactly key.size bytes
    signer = rsa.RSAKey(n, e, d, p, q, dp, dq, qinv)    # the Signer (RS256) around it

Encoded message (protocols.md 3.2), for a modulus of `size` bytes:

    00 01 FF .. FF 00 | 30 31 30 0d 06 09 60 86 48 01 65 03 04 02 01 05 00 04 20 | SHA-256
                        DigestInfo prefix (AlgorithmIdentifier sha256, NULL params)

The CRT does two half-size exponentiations (3-4x faster than one `pow(m, d, n)`). A fault
during one of them (a voltage glitch, a bit flip) would give a signature s with
gcd(s^e - m, n) = p: one bad signature reveals the key (Boneh-DeMillo-Lipton). So every
signature is checked with s^e == m (mod n) before it leaves: with e = 65537 that costs
17 squarings, about 2% of the signature, and also catches inconsistent key parts
(a wrong dp, dq or qinv in the DER) instead of sending signatures nobody can verify.

Not constant-time: `pow` on big ints takes value-dependent time. The input is a padded
SHA-256 that an attacker cannot steer, which rules out the chosen-input timing attacks on
RSA-CRT (Brumley-Boneh); local power/EM analysis remains possible (docs/security.md).
"""

import hashlib

from tether.compat import MICROPYTHON, const

_MIN_SIZE = const(62)  # 2 + 8 bytes of FF padding (RFC 8017 minimum) + 1 + 19 + 32
_WINDOW = const(5)  # sliding-window width: 16 odd powers, ~1/6 multiplications per bit
_PREFIX = b"\x30\x31\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00\x04\x20"


def byte_size(n):
    """Length in bytes of the big-endian form of n > 0 (MicroPython ints lack bit_length)."""
    return (len("%x" % n) + 1) >> 1


def _window_pow(b, e, m):
    # MicroPython's pow(b, e, m) is right-to-left binary: one multiplication per set bit.
    # A 5-bit sliding window does one per ~6 bits (~20% fewer big-int operations for a
    # 1024-bit exponent, measured 34 ms against 41 ms on the unix port). CPython's own pow
    # already windows, and its loop overhead would make this slower there.
    if not e:
        return 1 % m
    b2 = b * b % m
    odd = [b % m]  # odd[i] = b^(2i+1)
    for _ in range((1 << (_WINDOW - 1)) - 1):
        odd.append(odd[-1] * b2 % m)
    bits = bin(e)[2:]  # most significant first; the exponent bits as ASCII, no big shifts
    n = len(bits)
    acc = 1
    i = 0
    while i < n:
        if bits[i] == "0":
            acc = acc * acc % m
            i += 1
            continue
        j = min(i + _WINDOW, n)
        while bits[j - 1] == "0":
            j -= 1
        for _ in range(j - i):
            acc = acc * acc % m
        acc = acc * odd[int(bits[i:j], 2) >> 1] % m
        i = j
    return acc


_pow = _window_pow if MICROPYTHON else pow


class RSAPrivate:
    """An RSA private key in CRT form; the parts are the ints of an RSAPrivateKey."""

    def __init__(self, n, e, d, p, q, dp, dq, qinv):
        if not (n > 0 and e > 1 and e & 1 and p > 1 and q > 1) or p * q != n:
            raise ValueError("RSA key parts are inconsistent (n != p * q or bad e)")
        self.n = n
        self.e = e
        self.d = d
        self.p = p
        self.q = q
        self.dp = dp
        self.dq = dq
        self.qinv = qinv
        self.size = byte_size(n)
        if self.size < _MIN_SIZE:
            raise ValueError("RSA modulus of %d bits is too small" % (self.size * 8))

    def sign_digest_pkcs1(self, digest):
        """PKCS#1 v1.5 signature of a 32-byte SHA-256 digest: self.size bytes."""
        if len(digest) != 32:
            raise ValueError("digest must be the 32 bytes of a SHA-256")
        pad = self.size - 3 - len(_PREFIX) - 32
        em = b"\x00\x01" + b"\xff" * pad + b"\x00" + _PREFIX + bytes(digest)
        m = int.from_bytes(em, "big")
        p = self.p
        q = self.q
        # Garner: s = m2 + q * (qinv * (m1 - m2) mod p), with m1 = m^dp mod p, m2 = m^dq mod q.
        m1 = _pow(m % p, self.dp, p)
        m2 = _pow(m % q, self.dq, q)
        s = m2 + (self.qinv * (m1 - m2) % p) * q
        if pow(s, self.e, self.n) != m:
            raise ValueError("RSA signature failed its check: key parts inconsistent, or a fault")
        return s.to_bytes(self.size, "big")

    def sign_pkcs1_sha256(self, message):
        """PKCS#1 v1.5 SHA-256 signature of message (JWS RS256): self.size bytes."""
        return self.sign_digest_pkcs1(hashlib.sha256(message).digest())


class RSAKey:
    """An RSA private key that signs RS256 (PKCS#1 v1.5, SHA-256, with the CRT): the Signer
    tether.keys.load_private_key returns for an RSA key."""

    algorithm = "RS256"

    def __init__(self, n, e, d, p, q, dp, dq, qinv):
        self.n = n
        self.e = e
        self._priv = RSAPrivate(n, e, d, p, q, dp, dq, qinv)

    def sign(self, message):
        return self._priv.sign_pkcs1_sha256(message)

    def public_key_der(self):
        from tether import der

        pub = der.seq(der.integer(self.n), der.integer(self.e))
        oid = der.oid("1.2.840.113549.1.1.1")  # rsaEncryption
        return der.seq(der.seq(oid, der.null()), der.bitstring(pub))


def verify_pkcs1_sha256(n, e, message, signature):
    """True when signature is a PKCS#1 v1.5 SHA-256 signature of message (for tests)."""
    size = byte_size(n)
    if len(signature) != size:
        return False
    s = int.from_bytes(signature, "big")
    if s >= n:
        return False
    pad = size - 3 - len(_PREFIX) - 32
    em = b"\x00\x01" + b"\xff" * pad + b"\x00" + _PREFIX + hashlib.sha256(message).digest()
    return pow(s, e, n).to_bytes(size, "big") == em
