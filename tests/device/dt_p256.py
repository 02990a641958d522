"""tether.p256 on both interpreters: the RFC 6979 A.2.5 vectors (P-256, SHA-256), the comb
against an independent double-and-add, verification, key generation and point encoding."""

import hashlib

from harness import Rng, raises
from tether import p256

# RFC 6979 A.2.5: private key and public key
D = 0xC9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721
UX = 0x60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6
UY = 0x7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299
# With SHA-256, message "sample"
SAMPLE_K = 0xA6E3C57DD01ABE90086538398355DD4C3B17AA873382B0F24D6129493D8AAD60
SAMPLE_R = 0xEFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716
SAMPLE_S = 0xF7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8
# With SHA-256, message "test"
TEST_R = 0xF1ABB023518351CD71D881567B1EA663ED3EFCF6C5132B354F28D3B0B7D38367
TEST_S = 0x019F4113742A2B14BD25926B49C649155F267E60D3814B4C0CC84250E46F0083

N = p256.N
G = (p256.GX, p256.GY)
# 2G (SEC test vectors / any P-256 library)
G2 = (
    0x7CF27B188D034F7E8A52380304B51AC3C08969E277F21B35A60B48FC47669978,
    0x07775510DB8ED040293D9AC69F7430DBBA7DADE63CE982299E04B79D227873D1,
)


def sha(msg):
    return hashlib.sha256(msg).digest()


def rand_scalar(rng):
    k = 0
    for _ in range(8):
        k = (k << 32) | rng.next()
    return k % (N - 1) + 1


def ladder(k):
    # Independent reference: right-to-left double-and-add on the module's general formulas.
    acc = None
    pt = (p256.GX, p256.GY, 1)
    while k:
        if k & 1:
            acc = p256._add(acc, pt)
        pt = p256._dbl(pt)
        k >>= 1
    return p256._affine(acc)


def test_public_key_of_rfc6979_key():
    assert p256.public_point(D) == (UX, UY)


def test_rfc6979_sample_signature():
    assert p256.sign_digest(D, sha(b"sample")) == (SAMPLE_R, SAMPLE_S)


def test_rfc6979_test_signature():
    assert p256.sign_digest(D, sha(b"test")) == (TEST_R, TEST_S)


def test_rfc6979_nonce_gives_the_published_r():
    # r is x(kG) mod n for the published k: checks the comb on the nonce itself.
    assert p256.public_point(SAMPLE_K)[0] % N == SAMPLE_R


def test_signing_is_deterministic_and_message_dependent():
    assert p256.sign_digest(D, sha(b"x")) == p256.sign_digest(D, sha(b"x"))
    assert p256.sign_digest(D, sha(b"x")) != p256.sign_digest(D, sha(b"y"))


def test_hedged_signatures_differ_per_extra_and_verify():
    digest = sha(b"sample")
    a = p256.sign_digest(D, digest, b"\x01" * 32)
    b = p256.sign_digest(D, digest, b"\x02" * 32)
    assert a != b and a != (SAMPLE_R, SAMPLE_S)
    assert p256.sign_digest(D, digest, b"\x01" * 32) == a
    assert p256.verify_digest(UX, UY, digest, *a)
    assert p256.verify_digest(UX, UY, digest, *b)
    assert p256.sign_digest(D, digest, b"") == (SAMPLE_R, SAMPLE_S)


def test_verify_accepts_the_vectors_and_rejects_changes():
    assert p256.verify_digest(UX, UY, sha(b"sample"), SAMPLE_R, SAMPLE_S)
    assert p256.verify_digest(UX, UY, sha(b"test"), TEST_R, TEST_S)
    assert not p256.verify_digest(UX, UY, sha(b"samplf"), SAMPLE_R, SAMPLE_S)
    assert not p256.verify_digest(UX, UY, sha(b"sample"), SAMPLE_R, SAMPLE_S ^ 1)
    assert not p256.verify_digest(UX, UY, sha(b"sample"), TEST_R, SAMPLE_S)
    assert not p256.verify_digest(UX, UY, sha(b"sample"), 0, SAMPLE_S)
    assert not p256.verify_digest(UX, UY, sha(b"sample"), SAMPLE_R, N)
    assert not p256.verify_digest(UX, UY ^ 1, sha(b"sample"), SAMPLE_R, SAMPLE_S)
    gx, gy = G
    assert not p256.verify_digest(gx, gy, sha(b"sample"), SAMPLE_R, SAMPLE_S)


def test_comb_edge_scalars_match_known_points():
    assert p256.public_point(1) == G
    assert p256.public_point(2) == G2
    assert p256.public_point(N - 1) == (p256.GX, p256.P - p256.GY)
    assert p256.public_point(N - 2) == (G2[0], p256.P - G2[1])


def test_comb_matches_double_and_add():
    # Scalars that fill, empty or split the comb's columns and sub-tables, plus random ones.
    from tether.p256_table import D as COLS
    from tether.p256_table import E

    ks = [3, 0xFF, (1 << 255) + 1, (1 << COLS) - 1, 1 << E, (1 << E) - 1, 1 << (2 * COLS)]
    ks += [(1 << 256) - 1 - (1 << 224), N >> 1, (N >> 1) + 1]
    rng = Rng(6979)
    ks += [rand_scalar(rng) for _ in range(6)]
    for k in ks:
        k %= N
        assert p256.public_point(k) == ladder(k), hex(k)


def test_sign_verify_round_trip_for_random_keys():
    rng = Rng(256)
    for i in range(4):
        d = rand_scalar(rng)
        x, y = p256.public_point(d)
        assert p256.is_on_curve(x, y)
        digest = sha(b"message %d" % i)
        r, s = p256.sign_digest(d, digest)
        assert 0 < r < N and 0 < s < N
        assert p256.verify_digest(x, y, digest, r, s)


def test_addition_special_cases():
    g = (p256.GX, p256.GY, 1)
    assert p256._add(g, g) == p256._dbl(g)
    assert p256._add(g, (p256.GX, p256.P - p256.GY, 1)) is None
    assert p256._add(None, g) == g and p256._add(g, None) == g
    assert p256._dbl(None) is None


def test_private_key_range_is_enforced():
    for d in (0, N, N + 1, -1):
        raises(ValueError, p256.sign_digest, d, sha(b"x"))
        raises(ValueError, p256.public_point, d)
    raises(ValueError, p256.sign_digest, D, sha(b"x")[:31])
    raises(ValueError, p256.sign_digest, D, sha(b"x") + b"\x00")


def test_generated_keys_are_in_range_distinct_and_usable():
    keys = [p256.generate_private() for _ in range(3)]
    assert len(set(keys)) == 3
    for d in keys:
        assert 0 < d < N
        assert p256.is_on_curve(*p256.public_point(d))


def test_generate_private_redraws_out_of_range_randomness():
    draws = [b"\xff" * 32, b"\x00" * 32, N.to_bytes(32, "big"), (N - 1).to_bytes(32, "big")]
    assert p256.generate_private(lambda n: draws.pop(0)) == N - 1
    assert not draws


def test_generate_private_gives_up_on_a_stuck_rng():
    exc = raises(RuntimeError, p256.generate_private, lambda n: b"\x00" * n)
    assert "RNG" in str(exc)


def test_point_encoding_round_trip():
    data = p256.encode_point(UX, UY)
    assert len(data) == 65 and data[0] == 4
    assert data[1:33] == UX.to_bytes(32, "big")
    assert p256.decode_point(data) == (UX, UY)
    # small coordinates keep their leading zeros
    assert p256.encode_point(1, 2)[1:33] == b"\x00" * 31 + b"\x01"


def test_decode_point_rejects_bad_encodings():
    good = p256.encode_point(UX, UY)
    raises(ValueError, p256.decode_point, good[:64])
    raises(ValueError, p256.decode_point, b"\x02" + good[1:])
    bad = bytearray(good)
    bad[64] ^= 1
    raises(ValueError, p256.decode_point, bytes(bad))
    assert not p256.is_on_curve(p256.P, 0)
