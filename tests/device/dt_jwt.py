"""tether.jwt on both interpreters: byte-exact ES256 (RFC 6979, so reproducible) and RS256
tokens, header rules as PyJWT's, signatures that verify, and the errors. PyJWT itself checks
every token in tests/test_jwt_differential.py, including the two vectors below."""

import hashlib
import json

from harness import raises
from key_vectors import P256_FINGERPRINT, P256_SEC1, P256_SPKI, RSA_PKCS1
from tether import der, keys, p256
from tether import jwt as tjwt
from tether.encoding import b64url_decode
from tether.errors import CredentialError
from tether.jwt import JWTError

ES256_SUB_DEV1 = (
    "eyJhbGciOiJFUzI1NiIsImtpZCI6IjVhN2E3OGNjYTRhMGY0MjBkOWJjNjJiYjY2OWMzYzI3NTllMzlmNzIzZDNh"
    "ZTEwZGNiZTBmMDgxNWEwN2VjZDQiLCJ0eXAiOiJKV1QifQ.eyJzdWIiOiJkZXYxIn0.wVb1KgPNge7BFtcseeK1IMW"
    "yduQBNUO1CbYff77kC82XgF82qm2AMJdD_5X0SHFhgbnxjhOZQ-S2YkirCD7azg"
)
RS256_SUB_DEV1 = (
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJkZXYxIn0.fH6nzihDk5VHLeOAPoSRrzRpNRuWdAaV"
    "yst0d_LcsFlQyh5yUNUVq0Dto50G9FWpavAiNgr8pLmZwduQRJvDOEYvWFa_h2tOYdPCkUHNyvehie2J6kx92T1JH9"
    "J6IO3AJjH_vu6qe2N2M3gzjH_ag87e9utpz_iAONrn53pSYM5khKeLqj_c6Fnue5RkCdShJCUz9exQ4L3MsFrqVa9S"
    "khmaQeLcob8FNPOSK3jEEMS0RonbYAURWUQn2IkDu5NEbr3imaJ9c-93iBdhvjCnGMwkBVQ5ioQyS5DysdHxEZwkCv"
    "I2lnTZaHAkppdW_ZpTvDBgPLM99xcgmmQdwFyjwQ"
)
DI_SHA256 = b"\x30\x31\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00\x04\x20"


def split(token):
    h, p, s = token.split(".")
    return json.loads(b64url_decode(h)), json.loads(b64url_decode(p)), b64url_decode(s)


def es256_valid(token, spki=P256_SPKI):
    signing_input, sig = token.rsplit(".", 1)
    sig = b64url_decode(sig)
    assert len(sig) == 64  # raw R||S, never DER
    point = spki[-64:]
    x, y = int.from_bytes(point[:32], "big"), int.from_bytes(point[32:], "big")
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    return p256.verify_digest(x, y, hashlib.sha256(signing_input.encode()).digest(), r, s)


def rs256_valid(token, key):
    signing_input, sig = token.rsplit(".", 1)
    sig = b64url_decode(sig)
    size = len(sig)
    em = pow(int.from_bytes(sig, "big"), key.e, key.n).to_bytes(size, "big")
    t = DI_SHA256 + hashlib.sha256(signing_input.encode()).digest()
    return em == b"\x00\x01" + b"\xff" * (size - len(t) - 3) + b"\x00" + t


def test_es256_token_is_byte_exact_and_reproducible():
    token = tjwt.encode(
        {"sub": "dev1"}, P256_SEC1, algorithm="ES256", headers={"kid": P256_FINGERPRINT}
    )
    assert token == ES256_SUB_DEV1
    assert es256_valid(token)


def test_rs256_token_is_byte_exact():
    assert tjwt.encode({"sub": "dev1"}, RSA_PKCS1, algorithm="RS256") == RS256_SUB_DEV1
    assert rs256_valid(RS256_SUB_DEV1, keys.load_private_key(RSA_PKCS1))


def test_akenza_claims_round_trip_and_verify():
    claims = {"iat": 1700000000, "exp": 1700001200, "aud": "https://akenza.io/devices/dev1"}
    for key in (
        P256_SEC1,
        der.pem_encode("EC PRIVATE KEY", P256_SEC1),
        keys.load_private_key(P256_SEC1),
    ):
        token = tjwt.encode(claims, key, algorithm="ES256", headers={"kid": P256_FINGERPRINT})
        header, payload, sig = split(token)
        assert header == {"alg": "ES256", "typ": "JWT", "kid": P256_FINGERPRINT}
        assert payload == claims
        assert "=" not in token and "+" not in token and "/" not in token
        assert es256_valid(token)


def test_header_is_compact_with_sorted_keys():
    token = tjwt.encode({}, P256_SEC1, headers={"zz": 1, "kid": "k", "a": [1, 2]})
    assert (
        b64url_decode(token.split(".")[0])
        == b'{"a":[1,2],"alg":"ES256","kid":"k","typ":"JWT","zz":1}'
    )
    assert b64url_decode(token.split(".")[1]) == b"{}"


def test_algorithm_defaults_to_the_keys_own():
    rsa = keys.load_private_key(RSA_PKCS1)
    assert split(tjwt.encode({"a": 1}, rsa))[0]["alg"] == "RS256"
    assert split(tjwt.encode({"a": 1}, P256_SEC1))[0]["alg"] == "ES256"


def test_headers_alg_wins_and_typ_can_be_dropped():
    header = split(tjwt.encode({}, P256_SEC1, algorithm="RS256", headers={"alg": "ES256"}))[0]
    assert header["alg"] == "ES256"
    header = split(tjwt.encode({}, P256_SEC1, headers={"typ": None}))[0]
    assert header == {"alg": "ES256"}
    header = split(tjwt.encode({}, P256_SEC1, headers={"b64": True}))[0]
    assert "b64" not in header


class RecordingSigner:
    """A Signer that is not a tether key (a secure element would look like this)."""

    algorithm = "ES256"

    def __init__(self):
        self.key = keys.load_private_key(P256_SEC1)
        self.messages = []

    def sign(self, message):
        self.messages.append(bytes(message))
        return self.key.sign(message)


def test_a_signer_replaces_the_key():
    signer = RecordingSigner()
    token = tjwt.encode({"sub": "dev1"}, signer, headers={"kid": P256_FINGERPRINT})
    assert token == ES256_SUB_DEV1
    assert signer.messages == [token.rsplit(".", 1)[0].encode()]


class DerSigner(RecordingSigner):
    def sign(self, message):
        return b"\x30\x44" + b"\x00" * 70


def test_errors():
    raises(TypeError, tjwt.encode, [1], P256_SEC1)
    raises(TypeError, tjwt.encode, {"iss": 5}, P256_SEC1)
    raises(JWTError, tjwt.encode, {}, P256_SEC1, algorithm="HS256")
    raises(JWTError, tjwt.encode, {}, P256_SEC1, algorithm="none")
    raises(JWTError, tjwt.encode, {}, P256_SEC1, algorithm="RS256")
    raises(JWTError, tjwt.encode, {}, RSA_PKCS1, algorithm="ES256")
    raises(JWTError, tjwt.encode, {}, P256_SEC1, headers={"kid": 5})
    raises(JWTError, tjwt.encode, {}, P256_SEC1, headers={"b64": False})
    raises(JWTError, tjwt.encode, {}, 12345)
    raises(JWTError, tjwt.encode, {}, DerSigner())
    raises(CredentialError, tjwt.encode, {}, b"not a key")
    assert issubclass(JWTError, CredentialError)


def test_timegm_matches_known_dates():
    cases = [
        ((1970, 1, 1, 0, 0, 0), 0),
        ((2000, 2, 29, 12, 0, 0), 951825600),
        ((2023, 11, 14, 22, 13, 20), 1700000000),
        ((1969, 12, 31, 23, 59, 59), -1),
        ((2100, 3, 1, 0, 0, 0), 4107542400),
    ]
    for t, want in cases:
        assert tjwt._timegm(t) == want, t
