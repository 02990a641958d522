"""tether.jwt against PyJWT + cryptography (CPython only).

PyJWT verifies every token we make (ES256 and RS256, keys as DER and PEM, hypothesis claims);
the header and payload segments equal PyJWT's byte for byte, and so does the whole RS256
token (PKCS#1 v1.5 is deterministic). Seed 001's akenza `create_jwt` runs unchanged with
`import tether.jwt as jwt`.
"""

import calendar
import datetime
import hashlib

import jwt as pyjwt
import pytest
import tether.jwt as jwt  # what seed 001's create_jwt calls `jwt`
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tether import keys

DER, PEM = ser.Encoding.DER, ser.Encoding.PEM
PKCS8, TRAD = ser.PrivateFormat.PKCS8, ser.PrivateFormat.TraditionalOpenSSL
SPKI = ser.PublicFormat.SubjectPublicKeyInfo
NO_VERIFY_CLAIMS = {
    "verify_signature": True,
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": False,
    "verify_iss": False,
    "verify_sub": False,
    "verify_jti": False,
}

EC_KEY = ec.generate_private_key(ec.SECP256R1())
RSA_KEY = rsa.generate_private_key(65537, 2048)


def forms(key, fmt):
    """The private key as DER bytes, PEM bytes and PEM text."""
    d = key.private_bytes(DER, fmt, ser.NoEncryption())
    p = key.private_bytes(PEM, fmt, ser.NoEncryption())
    return [d, p, p.decode()]


EC_FORMS = forms(EC_KEY, TRAD) + forms(EC_KEY, PKCS8)
RSA_FORMS = forms(RSA_KEY, TRAD) + forms(RSA_KEY, PKCS8)


def segments(token):
    return token.split(".")


def verify(token, key, alg):
    return pyjwt.decode(token, key.public_key(), algorithms=[alg], options=NO_VERIFY_CLAIMS)


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
claims_st = st.dictionaries(st.text(max_size=10), json_values, max_size=6)
datetimes = st.datetimes(
    min_value=datetime.datetime(1970, 1, 1),
    max_value=datetime.datetime(2200, 1, 1),
    timezones=st.sampled_from(
        [None, datetime.timezone.utc, datetime.timezone(datetime.timedelta(hours=-7))]
    ),
)
headers_st = st.dictionaries(
    st.sampled_from(["kid", "x5t", "cty", "zz", "a"]), st.text(max_size=12), max_size=3
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(claims=claims_st, headers=headers_st, form=st.integers(0, len(EC_FORMS) - 1))
def test_pyjwt_verifies_every_es256_token(claims, headers, form):
    claims.pop("iss", None)
    token = jwt.encode(claims, EC_FORMS[form], algorithm="ES256", headers=headers)
    assert verify(token, EC_KEY, "ES256") == claims
    ref = pyjwt.encode(claims, EC_KEY, algorithm="ES256", headers=headers)
    assert segments(token)[:2] == segments(ref)[:2]
    assert len(pyjwt.utils.base64url_decode(segments(token)[2])) == 64


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(claims=claims_st, headers=headers_st, form=st.integers(0, len(RSA_FORMS) - 1))
def test_rs256_tokens_equal_pyjwts(claims, headers, form):
    claims.pop("iss", None)
    token = jwt.encode(claims, RSA_FORMS[form], algorithm="RS256", headers=headers)
    assert token == pyjwt.encode(claims, RSA_KEY, algorithm="RS256", headers=headers)
    assert verify(token, RSA_KEY, "RS256") == claims


@settings(max_examples=60, deadline=None)
@given(iat=datetimes, exp=datetimes, nbf=datetimes)
def test_datetime_claims_become_unix_seconds_as_in_pyjwt(iat, exp, nbf):
    claims = {"iat": iat, "exp": exp, "nbf": nbf, "other": 1}
    token = jwt.encode(claims, EC_FORMS[0], algorithm="ES256")
    ref = pyjwt.encode(claims, EC_KEY, algorithm="ES256")
    assert segments(token)[:2] == segments(ref)[:2]
    got = verify(token, EC_KEY, "ES256")
    assert got["iat"] == calendar.timegm(iat.utctimetuple())
    assert claims["iat"] is iat  # the caller's dict is not modified


def test_a_loaded_signer_is_accepted_and_gives_the_same_token():
    signer = keys.load_private_key(EC_FORMS[0])
    claims = {"sub": "x", "iat": 1}
    assert jwt.encode(claims, signer) == jwt.encode(claims, EC_FORMS[3], algorithm="ES256")


def test_device_test_vectors_verify_with_pyjwt():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent / "device"))
    import dt_jwt
    from key_vectors import P256_SPKI, RSA_PKCS1, RSA_SPKI

    rsa_pub = ser.load_der_public_key(RSA_SPKI)
    ec_pub = ser.load_der_public_key(P256_SPKI)
    assert pyjwt.decode(dt_jwt.ES256_SUB_DEV1, ec_pub, algorithms=["ES256"]) == {"sub": "dev1"}
    assert pyjwt.decode(dt_jwt.RS256_SUB_DEV1, rsa_pub, algorithms=["RS256"]) == {"sub": "dev1"}
    rsa_key = ser.load_der_private_key(RSA_PKCS1, None)
    assert pyjwt.encode({"sub": "dev1"}, rsa_key, algorithm="RS256") == dt_jwt.RS256_SUB_DEV1


# --- seed 001 (akenza's Python sample), create_jwt exactly as the seed wrote it ---


def get_public_key_fingerprint(public_key_file):
    # The seed uses pycryptodome (RSA/ECC.import_key(...).export_key(format="DER")), which
    # writes SubjectPublicKeyInfo DER; cryptography writes the same bytes.
    with open(public_key_file, "rb") as f:
        public_key = ser.load_pem_public_key(f.read())

    return hashlib.sha256(public_key.public_bytes(DER, SPKI)).hexdigest()


# fmt: off
def create_jwt(device_id, private_key_file, public_key_file, algorithm="ES256"):
    token = {
        "iat": datetime.datetime.now(tz=datetime.timezone.utc),
        "exp": datetime.datetime.now(tz=datetime.timezone.utc) + datetime.timedelta(minutes=20),
        "aud": f"https://akenza.io/devices/{device_id}"
    }
    headers = {
        "kid": get_public_key_fingerprint(public_key_file)
    }
    with open(private_key_file, "r") as f:
        private_key = f.read()

    return jwt.encode(token, private_key, algorithm=algorithm, headers=headers)
# fmt: on


@pytest.mark.parametrize(
    "key,alg,fmt",
    [
        (EC_KEY, "ES256", TRAD),
        (EC_KEY, "ES256", PKCS8),
        (RSA_KEY, "RS256", TRAD),
        (RSA_KEY, "RS256", PKCS8),
    ],
)
def test_seed_001_create_jwt_runs_on_tether_jwt(tmp_path, key, alg, fmt):
    priv = tmp_path / "private.pem"
    pub = tmp_path / "public.pem"
    priv.write_bytes(key.private_bytes(PEM, fmt, ser.NoEncryption()))
    pub.write_bytes(key.public_key().public_bytes(PEM, SPKI))
    token = create_jwt("dev-1", str(priv), str(pub), algorithm=alg)

    claims = pyjwt.decode(
        token, key.public_key(), algorithms=[alg], audience="https://akenza.io/devices/dev-1"
    )
    assert claims["exp"] - claims["iat"] in (1199, 1200, 1201)
    spki = key.public_key().public_bytes(DER, SPKI)
    header = pyjwt.get_unverified_header(token)
    assert header == {"alg": alg, "typ": "JWT", "kid": hashlib.sha256(spki).hexdigest()}
    assert header["kid"] == keys.fingerprint(
        keys.load_private_key(priv.read_bytes()).public_key_der()
    )


def test_seed_001_flow_with_der_keys():
    # What a device stores: the key as DER, the kid from tether.keys.
    for key, alg, fmt in ((EC_KEY, "ES256", TRAD), (RSA_KEY, "RS256", PKCS8)):
        der = key.private_bytes(DER, fmt, ser.NoEncryption())
        signer = keys.load_private_key(der)
        token = jwt.encode(
            {"iat": 1700000000, "exp": 1700001200, "aud": "https://akenza.io/devices/d"},
            der,
            algorithm=alg,
            headers={"kid": keys.fingerprint(signer.public_key_der())},
        )
        spki = key.public_key().public_bytes(DER, SPKI)
        assert pyjwt.get_unverified_header(token)["kid"] == hashlib.sha256(spki).hexdigest()
        assert verify(token, key, alg)["aud"] == "https://akenza.io/devices/d"
