"""ECDSA on NIST P-256 (secp256r1) with SHA-256 digests: keys, signing, verification.

    d = p256.generate_private()                  # int in [1, N-1] from os.urandom
    x, y = p256.public_point(d)
    r, s = p256.sign_digest(d, hashlib.sha256(msg).digest())   # RFC 6979 nonce
    sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")         # JWS ES256 form
    p256.verify_digest(x, y, digest, r, s)       # -> bool (for tests; slower)
    p256.encode_point(x, y) / decode_point(b65)  # SEC1 uncompressed 04 || X || Y

Pure Python on big ints, so it runs wherever `int` is arbitrary precision (MicroPython's
mpz): Jacobian coordinates (one field inversion per scalar multiplication, by the extended
Euclid algorithm, about 4x faster than pow(a, p - 2, p) on mpz), and k*G by a fixed-base
comb (tether.p256_table: 62 points in 4 KB of bytes, frozen-able): 25 doublings and at most
52 mixed additions per signature. The table is its own component (tether-p256table, which
akenza requires: a JWT signed at every renewal); without it k*G takes the 4-bit window of
verification (256 doublings, 64 additions): same results, about 4x slower, for images that
sign rarely (Astarte: one key and CSR per device).

The nonce k is deterministic (RFC 6979, HMAC-SHA256): a signature never depends on the
quality of the device's random numbers, which is how ECDSA keys leak on weak RNGs. The flip
side: a fault injected while signing a message that is also signed cleanly reveals the key;
`sign_digest(d, digest, extra=os.urandom(32))` hedges against that (RFC 6979 3.6).

Not constant-time: big-int arithmetic time depends on the values, the comb skips zero
columns and the inversion is a data-dependent Euclid. Timing through a network is hard to
exploit at these speeds, but power or EM measurements on a board can be; keep keys that
matter in a secure element (tether.hal.se05x). See docs/security.md.
"""

from tether.compat import const

# Curve parameters (SEC 2, 2.4.2). a = -3, which the doubling formula uses.
P = const(0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF)
N = const(0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551)
B = const(0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B)
GX = const(0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296)
GY = const(0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5)


def _inv(a, m):
    # Extended Euclid; a in [1, m-1] and m prime, so the gcd is 1.
    x0, x1, r0, r1 = 1, 0, a, m
    while r1:
        q, r = divmod(r0, r1)
        r0, r1 = r1, r
        x0, x1 = x1, x0 - q * x1
    return x0 % m


def _dbl(pt):
    # dbl-2001-b (a = -3). P-256 has no point of order 2, so Y is never 0.
    if pt is None:
        return None
    x, y, z = pt
    p = P
    zz = z * z % p
    yy = y * y % p
    beta = x * yy % p
    alpha = 3 * (x - zz) * (x + zz) % p
    x3 = (alpha * alpha - (beta << 3)) % p
    return x3, (alpha * ((beta << 2) - x3) - (yy * yy << 3)) % p, (y * z << 1) % p


def _add(p1, p2):
    # General Jacobian addition (add-1998-cmo-2); falls back to doubling for p1 == p2.
    if p1 is None:
        return p2
    if p2 is None:
        return p1
    x1, y1, z1 = p1
    x2, y2, z2 = p2
    p = P
    z1z1 = z1 * z1 % p
    z2z2 = z2 * z2 % p
    u1 = x1 * z2z2 % p
    s1 = y1 * (z2 * z2z2 % p) % p
    h = (x2 * z1z1 - u1) % p
    r = (y2 * (z1 * z1z1 % p) - s1) % p
    if not h:
        return None if r else _dbl(p1)
    hh = h * h % p
    hhh = h * hh % p
    v = u1 * hh % p
    x3 = (r * r - hhh - (v << 1)) % p
    return x3, (r * (v - x3) - s1 * hhh) % p, z1 * z2 % p * h % p


def _affine(pt):
    if pt is None:
        raise ValueError("point at infinity")
    x, y, z = pt
    zi = _inv(z, P)
    zi2 = zi * zi % P
    return x * zi2 % P, y * zi2 % P * zi % P


def _comb(k):
    # k*G for 0 <= k < 2^(W*D), Jacobian (or None). Column c of the scalar is the W bits
    # k[c], k[D + c], ..., k[(W-1)*D + c]; sub-table t covers columns t*E .. t*E + E - 1.
    # The bits are read from bin(k) as ASCII: small-int work only, no big-int shifts.
    try:
        from tether.p256_table import TABLE, D, E, V, W
    except ImportError:  # an image without the block tether-p256table: slower, same result
        return _mul(k, (GX, GY, 1))

    nbits = W * D
    s = bin(k)[2:]
    bits = ("0" * (nbits - len(s)) + s).encode()
    bias = 0x30 * ((1 << W) - 1)  # each '0'/'1' digit adds 0x30 before the shifts
    per = (1 << W) - 1  # points per sub-table
    tab = memoryview(TABLE)  # slices of a memoryview copy nothing
    p = P
    x = y = z = 0
    inf = True
    for j in range(E - 1, -1, -1):
        if not inf:
            # Inline dbl-2001-b: a call and a tuple per step cost ~5% of a signature.
            zz = z * z % p
            yy = y * y % p
            beta = x * yy % p
            alpha = 3 * (x - zz) * (x + zz) % p
            x3 = (alpha * alpha - (beta << 3)) % p
            z = (y * z << 1) % p
            y = (alpha * ((beta << 2) - x3) - (yy * yy << 3)) % p
            x = x3
        for t in range(V):
            a = D - 1 - t * E - j
            c = 0
            for _ in range(W):
                c = (c << 1) + bits[a]
                a += D
            c -= bias
            if not c:
                continue
            o = (t * per + c - 1) << 6
            tx = int.from_bytes(tab[o : o + 32], "big")
            ty = int.from_bytes(tab[o + 32 : o + 64], "big")
            if inf:
                x, y, z = tx, ty, 1
                inf = False
                continue
            # Inline mixed addition (Jacobian + affine table point), madd with Z2 = 1.
            zz = z * z % p
            h = (tx * zz - x) % p
            r = (ty * (z * zz % p) - y) % p
            if not h:
                # Only when the running sum equals +-T: never for a random scalar,
                # handled anyway so that every k in range is right.
                if r:
                    inf = True
                else:
                    x, y, z = _dbl((x, y, z))
                continue
            hh = h * h % p
            hhh = h * hh % p
            v = x * hh % p
            x3 = (r * r - hhh - (v << 1)) % p
            y = (r * (v - x3) - y * hhh) % p
            x = x3
            z = z * h % p
    return None if inf else (x, y, z)


def _mul(k, pt):
    # k*pt for an arbitrary Jacobian point: 4-bit fixed window (verification, and k*G when
    # the comb table is not in the image).
    tab = [None, pt]
    for _ in range(14):
        tab.append(_add(tab[-1], pt))
    acc = None
    for i in range(63, -1, -1):
        for _ in range(4):
            acc = _dbl(acc)
        acc = _add(acc, tab[(k >> (4 * i)) & 15])
    return acc


def is_on_curve(x, y):
    """True when (x, y) is an affine point of P-256 (coordinates in range)."""
    if not (0 <= x < P and 0 <= y < P):
        return False
    return (y * y - (x * x * x - 3 * x + B)) % P == 0


def public_point(d):
    """The public key (x, y) of private scalar d, as affine ints."""
    if not 0 < d < N:
        raise ValueError("P-256 private key out of range [1, N-1]")
    return _affine(_comb(d))


def generate_private(urandom=None):
    """A new private scalar: 32 random bytes, redrawn until they lie in [1, N-1].

    urandom(n) -> n bytes is the source; os.urandom when None (hardware RNG on ESP32 and
    STM32, pico_rand on the RP2040). A secure element's RNG can be passed instead."""
    if urandom is None:
        from os import urandom

    # A redraw happens with probability 2^-32; 8 in a row means the RNG is stuck.
    for _ in range(8):
        d = int.from_bytes(urandom(32), "big")
        if 0 < d < N:
            return d
    raise RuntimeError("the RNG returns out-of-range values (all 0x00 or 0xFF?): it is broken")


def encode_point(x, y):
    """SEC1 uncompressed point: 0x04 || X || Y, 65 bytes."""
    return b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")


def decode_point(data):
    """(x, y) from a 65-byte uncompressed point; ValueError unless it is on the curve."""
    if len(data) != 65 or data[0] != 4:
        raise ValueError("not an uncompressed P-256 point (65 bytes, 0x04 first)")
    x = int.from_bytes(data[1:33], "big")
    y = int.from_bytes(data[33:], "big")
    if not is_on_curve(x, y):
        raise ValueError("point is not on P-256")
    return x, y


def _digest_int(digest):
    if len(digest) != 32:
        raise ValueError("digest must be the 32 bytes of a SHA-256")
    return int.from_bytes(digest, "big")


def sign_digest(d, digest, extra=b""):
    """ECDSA signature (r, s) of a 32-byte SHA-256 digest, with RFC 6979 deterministic k.

    extra: RFC 6979 3.6 additional data mixed into k. Pass os.urandom(32) for "hedged"
    signatures: k then differs on every call, which defeats fault attacks that compare a
    correct and a glitched signature of the same message, and k stays safe even when the
    RNG is broken. Empty (the default) gives the RFC's deterministic k and test vectors."""
    from tether.hmac import digest as hmac

    if not 0 < d < N:
        raise ValueError("P-256 private key out of range [1, N-1]")
    z = _digest_int(digest)
    # RFC 6979 3.2 for qlen = hlen = 256: bits2int is a plain conversion, bits2octets(h1)
    # is (h1 mod q) as 32 bytes, and one HMAC output is one candidate k.
    seed = d.to_bytes(32, "big") + (z % N).to_bytes(32, "big") + bytes(extra)
    v = b"\x01" * 32
    k = hmac(b"\x00" * 32, v + b"\x00" + seed)
    v = hmac(k, v)
    k = hmac(k, v + b"\x01" + seed)
    v = hmac(k, v)
    while True:
        v = hmac(k, v)
        nonce = int.from_bytes(v, "big")
        if 0 < nonce < N:
            x, _, zj = _comb(nonce)
            zi = _inv(zj, P)
            r = x * (zi * zi % P) % P % N
            if r:
                s = _inv(nonce, N) * (z + r * d) % N
                if s:
                    return r, s
        # Out of range, r = 0 or s = 0 (probability ~2^-128): RFC 6979 3.2 h.3, next k.
        k = hmac(k, v + b"\x00")
        v = hmac(k, v)


def verify_digest(x, y, digest, r, s):
    """True when (r, s) is a valid signature of digest under public key (x, y)."""
    if not (0 < r < N and 0 < s < N) or not is_on_curve(x, y):
        return False
    w = _inv(s, N)
    z = _digest_int(digest)
    pt = _add(_comb(z * w % N), _mul(r * w % N, (x, y, 1)))
    if pt is None:
        return False
    return _affine(pt)[0] % N == r
