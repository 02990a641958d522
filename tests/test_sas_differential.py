"""tether.sas against the token generator inside azure-iot-device 2.14 (CPython only), and
tether.encoding / tether.hmac against the stdlib with hypothesis.

The SDK pins paho-mqtt < 2, so it runs in its own cached venv (tests/refvenv.py): one
subprocess signs a batch of cases with `RenewableSasToken` + `SymmetricKeySigningMechanism`
(azure/iot/device/common/auth/sastoken.py, signing_mechanism.py), its clock pinned so the
expiry is the one we ask for, and prints the tokens as JSON.
"""

import base64
import hashlib
import hmac as std_hmac
import json
import random
import urllib.parse

from hypothesis import given, settings
from hypothesis import strategies as st
from refvenv import run_ref
from tether import encoding, sas
from tether import hmac as thmac

SDK_SCRIPT = r"""
import json, sys
from azure.iot.device.common.auth import sastoken, signing_mechanism
cases = json.loads(sys.stdin.read() if len(sys.argv) < 2 else open(sys.argv[1]).read())
out = []
for uri, key, expiry, key_name in cases:
    sastoken.time.time = lambda: expiry  # ttl=0 below: the token's se is exactly `expiry`
    mech = signing_mechanism.SymmetricKeySigningMechanism(key)
    out.append(str(sastoken.RenewableSasToken(uri, mech, key_name=key_name, ttl=0)))
print(json.dumps(out))
"""

# Characters a device or registration id may hold (Azure allows `-.%_*?!(),:=@$'+` too),
# plus a few that must be escaped, so quote() is exercised on every class of byte.
ID_CHARS = (
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.%_*?!(),:=@$'+ /~\u00e9"
)


def sdk_tokens(cases, tmp_path):
    path = tmp_path / "cases.json"
    path.write_text(json.dumps(cases))
    return json.loads(run_ref("azure", SDK_SCRIPT, str(path)))


def random_cases(seed, n):
    rng = random.Random(seed)
    cases = []
    for i in range(n):
        dev = "".join(rng.choice(ID_CHARS) for _ in range(rng.randint(1, 40)))
        key = base64.b64encode(rng.randbytes(rng.choice((16, 32, 64, 80)))).decode()
        expiry = rng.choice((0, 1, 1700000000, 2**31 - 1, 2**31, 4102444800, rng.randrange(2**40)))
        kind = i % 3
        if kind == 0:
            cases.append((sas.hub_uri("hub-%d.azure-devices.net" % i, dev), key, expiry, None))
        elif kind == 1:
            cases.append((sas.dps_uri("0ne%08X" % i, dev), key, expiry, "registration"))
        else:
            cases.append((sas.hub_uri("h.net", dev, "mod" + dev[:3]), key, expiry, "policy%d" % i))
    return cases


def test_protocols_vectors_equal_the_sdk_tokens(tmp_path):
    key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    cases = [
        ("myhub.azure-devices.net/devices/dev1", key, 1700000000, None),
        ("0ne00000000/registrations/dev1", key, 1700000000, "registration"),
        ("0ne00000000/registrations/dev1", key, 1700000000, None),  # what the SDK's DPS sends
    ]
    want = sdk_tokens(cases, tmp_path)
    assert want[0] == sas.hub_token("myhub.azure-devices.net", "dev1", key, expiry=1700000000)
    assert want[1] == sas.dps_token("0ne00000000", "dev1", key, expiry=1700000000)
    assert want[2] == sas.sas_token("0ne00000000/registrations/dev1", key, 1700000000)
    assert want[1] == want[2] + "&skn=registration"


def test_hundreds_of_random_tokens_equal_the_sdk_tokens(tmp_path):
    cases = random_cases(20261203, 300)
    want = sdk_tokens(cases, tmp_path)
    assert len(want) == len(cases)
    for (uri, key, expiry, key_name), token in zip(cases, want):
        assert sas.sas_token(uri, key, expiry, key_name) == token, (uri, expiry, key_name)
        creds = sas.SasCredentials(uri, key, ttl_s=3600, policy=key_name, username="u")
        assert creds.mint(expiry - 3600) == ("u", token)
        assert creds.expires_at == expiry


def test_derived_key_equals_microsofts_recipe():
    # The recipe of Microsoft's docs (base64(HMAC-SHA256(b64decode(group), reg_id))).
    rng = random.Random(7)
    for _ in range(200):
        group = base64.b64encode(rng.randbytes(64)).decode()
        reg = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789-._:") for _ in range(20))
        want = base64.b64encode(
            std_hmac.new(base64.b64decode(group), reg.encode(), hashlib.sha256).digest()
        ).decode()
        assert sas.derive_device_key(group, reg) == want


# ----------------------------------------------------------- encoding and hmac vs stdlib


@settings(max_examples=400)
@given(st.binary(max_size=300))
def test_base64_family_equals_the_stdlib(data):
    assert encoding.b64encode(data) == base64.b64encode(data)
    assert encoding.b64decode(base64.b64encode(data)) == data
    url = base64.urlsafe_b64encode(data).rstrip(b"=")
    assert encoding.b64url_encode(data) == url
    assert encoding.b64url_decode(url) == data
    assert encoding.b64url_decode(base64.urlsafe_b64encode(data)) == data
    assert encoding.hexlify(data) == data.hex()
    assert encoding.unhexlify(data.hex().upper()) == data


@settings(max_examples=400)
@given(st.text(max_size=40), st.sampled_from(["", "/", "/:=&", "$.", "~"]))
def test_quote_equals_urllib(text, safe):
    assert encoding.quote(text, safe=safe) == urllib.parse.quote(text, safe=safe)
    assert encoding.unquote(urllib.parse.quote(text, safe=safe)) == text


@settings(max_examples=400)
@given(st.text(alphabet="%0123456789abcdefABCDEFgG/ \u00e9", max_size=30))
def test_unquote_to_bytes_equals_urllib(text):
    assert encoding.unquote_to_bytes(text) == urllib.parse.unquote_to_bytes(text)


@settings(max_examples=1000)
@given(
    st.binary(max_size=44).map(lambda b: base64.b64encode(b)),
    st.integers(0, 43),
    st.binary(min_size=1, max_size=1),
)
def test_b64decode_accepts_what_validate_true_accepts(text, at, ch):
    mutated = text[:at] + ch + text[at + 1 :]  # at past the end: one byte longer
    try:
        want = base64.b64decode(mutated, validate=True)
    except ValueError:
        want = None
    if len(mutated) % 4:
        want = None  # CPython ignores excess '=' after a full group ("QUJD="); we refuse it
    try:
        got = encoding.b64decode(mutated)
    except ValueError:
        got = None
    assert got == want, mutated


@settings(max_examples=400)
@given(st.binary(max_size=200), st.binary(max_size=300))
def test_hmac_equals_the_stdlib(key, msg):
    want = std_hmac.new(key, msg, hashlib.sha256).digest()
    assert thmac.digest(key, msg) == want
    assert thmac.compare_digest(thmac.digest(key, msg), want)
