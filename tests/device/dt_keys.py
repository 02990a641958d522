"""tether.keys on both interpreters: SEC1/PKCS#8/PKCS#1 keys from DER and PEM sign with the
published RFC 6979 values and cryptography's RSA signature, their SubjectPublicKeyInfo and
fingerprint are byte-exact, and every unusable key fails with a CredentialError that says why."""

import hashlib

from harness import Rng, raises
from key_vectors import (
    ED25519_PKCS8,
    P256_ENCRYPTED_PEM,
    P256_FINGERPRINT,
    P256_PKCS8,
    P256_SEC1,
    P256_SPKI,
    P384_PKCS8,
    RFC6979_R,
    RFC6979_S,
    RSA_PKCS1,
    RSA_SIG_SAMPLE,
    RSA_SPKI,
)
from tether import der, keys, p256
from tether.errors import CredentialError


def rs(sig):
    return int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")


def ec_forms():
    return [
        P256_SEC1,
        P256_PKCS8,
        der.pem_encode("EC PRIVATE KEY", P256_SEC1),
        der.pem_encode("PRIVATE KEY", P256_PKCS8).encode(),
    ]


def test_p256_keys_load_from_every_layout_and_sign_the_rfc6979_vector():
    for data in ec_forms():
        key = keys.load_private_key(data)
        assert key.algorithm == "ES256"
        sig = key.sign(b"sample")
        assert len(sig) == 64
        assert rs(sig) == (RFC6979_R, RFC6979_S)


def test_p256_spki_and_fingerprint_are_byte_exact():
    for data in ec_forms():
        key = keys.load_private_key(data)
        assert key.public_key_der() == P256_SPKI
        assert keys.fingerprint(key.public_key_der()) == P256_FINGERPRINT


def test_p256_to_der_writes_what_openssl_writes():
    assert keys.load_private_key(P256_PKCS8).to_der() == P256_SEC1
    pem = keys.load_private_key(P256_SEC1).to_pem()
    assert der.pem_decode(pem) == ("EC PRIVATE KEY", P256_SEC1)


def test_a_pem_with_ec_parameters_first_loads_the_key():
    text = der.pem_encode("EC PARAMETERS", der.oid("1.2.840.10045.3.1.7"))
    text += der.pem_encode("EC PRIVATE KEY", P256_SEC1)
    assert keys.load_private_key(text).public_key_der() == P256_SPKI


def test_generated_keys_round_trip_through_der_and_verify():
    for _ in range(3):
        key = keys.generate_p256()
        again = keys.load_private_key(key.to_der())
        assert again.public_key_der() == key.public_key_der()
        point = key.public_key_der()[-64:]
        x, y = int.from_bytes(point[:32], "big"), int.from_bytes(point[32:], "big")
        digest = hashlib.sha256(b"hello").digest()
        r, s = rs(again.sign(b"hello"))
        assert p256.verify_digest(x, y, digest, r, s)
        assert not p256.verify_digest(x, y, hashlib.sha256(b"hellp").digest(), r, s)


def test_rsa_keys_sign_as_cryptography_does():
    for data in (RSA_PKCS1, der.pem_encode("RSA PRIVATE KEY", RSA_PKCS1)):
        key = keys.load_private_key(data)
        assert key.algorithm == "RS256"
        assert key.sign(b"sample") == RSA_SIG_SAMPLE
        assert key.public_key_der() == RSA_SPKI


def test_rsa_in_pkcs8_loads():
    pk8 = der.seq(
        der.integer(0),
        der.seq(der.oid("1.2.840.113549.1.1.1"), der.null()),
        der.octets(RSA_PKCS1),
    )
    assert keys.load_private_key(pk8).sign(b"sample") == RSA_SIG_SAMPLE


def test_fingerprint_is_lowercase_hex_sha256():
    assert keys.fingerprint(b"") == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


def why(data):
    return str(raises(CredentialError, keys.load_private_key, data))


def test_encrypted_keys_say_decrypt_on_the_host():
    assert "decrypt" in why(P256_ENCRYPTED_PEM)
    enc_pk8 = der.seq(der.seq(der.oid("1.2.840.113549.1.5.13")), der.octets(b"x" * 16))
    assert "decrypt" in why(enc_pk8)
    assert "decrypt" in why(der.pem_encode("ENCRYPTED PRIVATE KEY", enc_pk8))


def test_a_file_name_instead_of_the_key_says_so():
    assert "file name" in why("device.der")
    assert "got int" in why(12345)


def test_other_curves_and_key_types_are_named():
    assert "P-256" in why(P384_PKCS8)
    assert "unsupported key type 1.3.101.112" in why(ED25519_PKCS8)


def test_a_sec1_key_whose_public_point_does_not_match_fails_when_used():
    bad = bytearray(P256_SEC1)
    bad[-1] ^= 1
    key = keys.load_private_key(bytes(bad))
    raises(CredentialError, key.public_key_der)


def test_out_of_range_scalars_are_refused():
    for d in (b"\x00" * 32, (p256.N).to_bytes(32, "big"), b"\xff" * 32):
        sec1 = der.seq(
            der.integer(1), der.octets(d), der.explicit(0, der.oid("1.2.840.10045.3.1.7"))
        )
        raises(CredentialError, keys.load_private_key, sec1)


def test_not_keys_are_refused_with_credential_error():
    cases = [
        b"",
        b"hello",
        P256_SPKI,
        der.seq(der.integer(1), der.octets(b"\x01" * 32)),  # no curve
        der.seq(der.integer(2), der.octets(b"\x01" * 32)),
        der.seq(*[der.integer(i + 1) for i in range(9)]),  # PKCS#1 version 1 (multi-prime)
        der.seq(der.integer(0), der.integer(0)),
        der.seq(*[der.integer(i + 1 if i else 0) for i in range(9)]),  # n != p * q
        "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n",
        "-----BEGIN PRIVATE KEY-----\nMA!A=\n-----END PRIVATE KEY-----\n",
    ]
    for case in cases:
        raises(CredentialError, keys.load_private_key, case)


def test_mutated_keys_raise_only_credential_error():
    rng = Rng(0x6E75)
    for base in (P256_SEC1, P256_PKCS8):
        for _ in range(150):
            buf = bytearray(base)
            for _ in range(1 + rng.below(3)):
                buf[rng.below(len(buf))] = rng.below(256)
            try:
                keys.load_private_key(bytes(buf))
            except CredentialError:
                pass
    for _ in range(150):
        buf = bytearray(RSA_PKCS1)
        buf[rng.below(len(buf))] = rng.below(256)
        try:
            keys.load_private_key(bytes(buf))
        except CredentialError:
            pass
    for n in range(len(RSA_PKCS1) - 1, 0, -97):
        raises(CredentialError, keys.load_private_key, RSA_PKCS1[:n])
