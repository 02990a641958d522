"""tether.keys against cryptography (CPython only).

Keys that cryptography makes, in every layout a user may hold (SEC1, PKCS#8, PKCS#1; DER and
PEM), load and sign; cryptography verifies every signature; our SubjectPublicKeyInfo is its
bytes exactly, and the fingerprint is the SHA-256 of its SPKI DER. Keys we generate and write
load in cryptography as the same key.
"""

import hashlib

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tether import keys
from tether.errors import CredentialError

DER, PEM = ser.Encoding.DER, ser.Encoding.PEM
PKCS8, TRAD = ser.PrivateFormat.PKCS8, ser.PrivateFormat.TraditionalOpenSSL
SPKI = ser.PublicFormat.SubjectPublicKeyInfo

EC_KEYS = [ec.generate_private_key(ec.SECP256R1()) for _ in range(3)]
RSA_KEYS = [rsa.generate_private_key(65537, bits) for bits in (1024, 2048, 3072)]
LAYOUTS = [(enc, fmt) for enc in (DER, PEM) for fmt in (TRAD, PKCS8)]


def spki(key):
    return key.public_key().public_bytes(DER, SPKI)


def es256_verify(key, message, raw):
    assert len(raw) == 64
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    key.public_key().verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))


@pytest.mark.parametrize("enc,fmt", LAYOUTS)
@pytest.mark.parametrize("i", range(len(EC_KEYS)))
def test_ec_keys_load_in_every_layout(i, enc, fmt):
    key = EC_KEYS[i]
    data = key.private_bytes(enc, fmt, ser.NoEncryption())
    ours = keys.load_private_key(data)
    assert ours.algorithm == "ES256"
    assert ours.public_key_der() == spki(key)
    assert keys.fingerprint(ours.public_key_der()) == hashlib.sha256(spki(key)).hexdigest()
    es256_verify(key, b"message", ours.sign(b"message"))
    if enc == PEM:
        assert keys.load_private_key(data.decode()).public_key_der() == spki(key)


@pytest.mark.parametrize("enc,fmt", LAYOUTS)
@pytest.mark.parametrize("i", range(len(RSA_KEYS)))
def test_rsa_keys_load_in_every_layout_and_sign_as_cryptography(i, enc, fmt):
    key = RSA_KEYS[i]
    ours = keys.load_private_key(key.private_bytes(enc, fmt, ser.NoEncryption()))
    assert ours.algorithm == "RS256"
    assert ours.public_key_der() == spki(key)
    assert keys.fingerprint(ours.public_key_der()) == hashlib.sha256(spki(key)).hexdigest()
    want = key.sign(b"message", padding.PKCS1v15(), hashes.SHA256())
    assert ours.sign(b"message") == want


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message=st.binary(max_size=300), i=st.integers(0, len(EC_KEYS) - 1))
def test_cryptography_verifies_every_es256_signature(message, i):
    ours = keys.load_private_key(EC_KEYS[i].private_bytes(DER, TRAD, ser.NoEncryption()))
    raw = ours.sign(message)
    es256_verify(EC_KEYS[i], message, raw)
    with pytest.raises(InvalidSignature):
        es256_verify(EC_KEYS[i], message + b"x", raw)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message=st.binary(max_size=300))
def test_rs256_signatures_equal_cryptographys(message):
    key = RSA_KEYS[1]
    ours = keys.load_private_key(key.private_bytes(DER, PKCS8, ser.NoEncryption()))
    assert ours.sign(message) == key.sign(message, padding.PKCS1v15(), hashes.SHA256())


def test_generated_keys_load_in_cryptography_as_the_same_key():
    for _ in range(5):
        ours = keys.generate_p256()
        theirs = ser.load_der_private_key(ours.to_der(), None)
        assert isinstance(theirs.curve, ec.SECP256R1)
        assert spki(theirs) == ours.public_key_der()
        assert theirs.private_bytes(DER, TRAD, ser.NoEncryption()) == ours.to_der()
        assert ser.load_pem_private_key(ours.to_pem().encode(), None).private_numbers() == (
            theirs.private_numbers()
        )
        es256_verify(theirs, b"m", ours.sign(b"m"))


def test_encrypted_keys_from_cryptography_are_refused_with_a_fix():
    enc = ser.BestAvailableEncryption(b"passphrase")
    for key in (EC_KEYS[0], RSA_KEYS[0]):
        for fmt in (TRAD, PKCS8):
            with pytest.raises(CredentialError, match="decrypt it on the host"):
                keys.load_private_key(key.private_bytes(PEM, fmt, enc))
        with pytest.raises(CredentialError, match="decrypt it on the host"):
            keys.load_private_key(key.private_bytes(DER, PKCS8, enc))


@pytest.mark.parametrize("curve", [ec.SECP384R1(), ec.SECP256K1(), ec.SECP521R1()])
def test_other_curves_are_refused_by_name(curve):
    key = ec.generate_private_key(curve)
    for fmt in (TRAD, PKCS8):
        with pytest.raises(CredentialError, match="only P-256"):
            keys.load_private_key(key.private_bytes(DER, fmt, ser.NoEncryption()))
