"""tether.p256 against `cryptography` (OpenSSL) on CPython, with hypothesis.

OpenSSL also implements RFC 6979 (`deterministic_signing=True`), so our signatures must be
equal to its signatures byte for byte, not merely valid. The comb table is regenerated and
compared with the frozen module.
"""

import hashlib
import sys
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import example, given, settings
from hypothesis import strategies as st
from tether import p256

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools import gen_p256_table  # noqa: E402

N = p256.N
scalars = st.integers(min_value=1, max_value=N - 1)
digests = st.binary(min_size=32, max_size=32)


def _openssl_rfc6979():
    # cryptography >= 43 with OpenSSL >= 3.2 signs with RFC 6979 k; older ones only verify.
    try:
        k = ec.derive_private_key(1, ec.SECP256R1())
        k.sign(b"", ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    except Exception:
        return False
    return True


RFC6979 = _openssl_rfc6979()


def their_key(d):
    return ec.derive_private_key(d, ec.SECP256R1())


def test_table_module_is_what_the_generator_writes():
    path = ROOT / "lib" / "tether" / "p256_table.py"
    assert path.read_text() == gen_p256_table.render()
    assert gen_p256_table.main(["--check"]) == 0


def test_table_holds_the_multiples_the_comb_expects():
    from tether.p256_table import TABLE, D, E, V, W

    assert W * D >= 256 and D == V * E
    for t in range(V):
        for c in (1, 5, (1 << W) - 1):
            k = sum(1 << (i * D + t * E) for i in range(W) if c >> i & 1)
            pub = their_key(k).public_key().public_numbers()
            o = (t * ((1 << W) - 1) + c - 1) * 64
            assert TABLE[o : o + 64] == pub.x.to_bytes(32, "big") + pub.y.to_bytes(32, "big")
    assert len(TABLE) == V * ((1 << W) - 1) * 64


@settings(max_examples=300, deadline=None)
@given(scalars)
@example(1)
@example(2)
@example(N - 1)
@example((1 << 255) + 1)
def test_public_point_matches_openssl(d):
    pub = their_key(d).public_key().public_numbers()
    assert p256.public_point(d) == (pub.x, pub.y)
    point = pub.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    assert p256.encode_point(pub.x, pub.y) == point


@settings(max_examples=2000, deadline=None)
@given(scalars, st.binary(max_size=200))
@example(1, b"")
@example(N - 1, b"sample")
def test_signatures_equal_openssl_rfc6979_and_verify(d, message):
    key = their_key(d)
    r, s = p256.sign_digest(d, hashlib.sha256(message).digest())
    der = encode_dss_signature(r, s)
    key.public_key().verify(der, message, ec.ECDSA(hashes.SHA256()))
    if RFC6979:
        theirs = key.sign(message, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
        assert decode_dss_signature(theirs) == (r, s)


@settings(max_examples=500, deadline=None)
@given(scalars, digests)
@example(1, b"\xff" * 32)  # z > N: reduced mod N in bits2octets and in s
@example(2, b"\x00" * 32)
@example(3, N.to_bytes(32, "big"))
def test_prehashed_digests_including_z_above_n(d, digest):
    key = their_key(d)
    r, s = p256.sign_digest(d, digest)
    key.public_key().verify(
        encode_dss_signature(r, s), digest, ec.ECDSA(Prehashed(hashes.SHA256()))
    )
    if RFC6979:
        algo = ec.ECDSA(Prehashed(hashes.SHA256()), deterministic_signing=True)
        assert decode_dss_signature(key.sign(digest, algo)) == (r, s)


@settings(max_examples=300, deadline=None)
@given(scalars, digests, st.binary(min_size=1, max_size=64))
def test_hedged_signatures_verify(d, digest, extra):
    r, s = p256.sign_digest(d, digest, extra)
    their_key(d).public_key().verify(
        encode_dss_signature(r, s), digest, ec.ECDSA(Prehashed(hashes.SHA256()))
    )


@settings(max_examples=300, deadline=None)
@given(scalars, st.binary(max_size=100))
def test_verify_accepts_openssl_random_k_signatures(d, message):
    key = their_key(d)
    pub = key.public_key().public_numbers()
    digest = hashlib.sha256(message).digest()
    r, s = decode_dss_signature(key.sign(message, ec.ECDSA(hashes.SHA256())))
    assert p256.verify_digest(pub.x, pub.y, digest, r, s)
    assert not p256.verify_digest(pub.x, pub.y, digest, r, (s + 1) % N or 1)


def test_openssl_rejects_a_corrupted_signature_of_ours():
    # Guards the verification above: a wrong s must not pass OpenSSL either.
    key = their_key(12345)
    r, s = p256.sign_digest(12345, hashlib.sha256(b"m").digest())
    try:
        key.public_key().verify(encode_dss_signature(r, s ^ 1), b"m", ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return
    raise AssertionError("OpenSSL accepted a corrupted signature")
