"""The akenza emulator plug-in (tools/cloudsim/plugins/akenza) on its own.

Tokens come from PyJWT (seed 001's own create_jwt, copied as the seed wrote it) with keys
made by tools/akenza_keys.py; devices are paho (the seed's publish.single) and Tether's
MQTTClient on CPython. Every way the broker must refuse a token is refused with CONNACK 5
and an event naming the claim; ACLs, downlinks, uplink-secret mode and the disconnect-at-exp
knob are exercised over TLS on 127.0.0.1.
"""

import asyncio
import base64
import datetime
import hashlib
import json
import ssl
import time

import jwt
import paho.mqtt.publish as publish
import pytest
from cloudsim_fixtures import cloudsim_factory  # noqa: F401
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from tether.mqtt import MQTTClient, MQTTConnectError, MQTTError

from tools import akenza_keys
from tools.cloudsim.plugins.akenza import token as jwtcheck

pytestmark = pytest.mark.timeout(60)

try:
    from Crypto.PublicKey import ECC, RSA  # pycryptodome, as the seed uses
except ImportError:  # the seed's dependency is optional here: the same SPKI DER otherwise
    from cryptography.hazmat.primitives import serialization as _ser

    class _Imported:
        def __init__(self, pem):
            self._key = _ser.load_pem_public_key(pem.encode())

        def export_key(self, format):
            assert format == "DER"
            return self._key.public_bytes(
                _ser.Encoding.DER, _ser.PublicFormat.SubjectPublicKeyInfo
            )

    class RSA:  # noqa: N801
        import_key = _Imported

    ECC = RSA


# -- seed 001, as written (the RSA variant; the EC one differs only in ECC.import_key) ---------


def create_jwt(device_id, private_key_file, public_key_file, algorithm="RS256"):
    token = {
        "iat": datetime.datetime.now(tz=datetime.timezone.utc),
        "exp": datetime.datetime.now(tz=datetime.timezone.utc) + datetime.timedelta(minutes=20),
        "aud": f"https://akenza.io/devices/{device_id}"
    }  # fmt: skip
    headers = {
        "kid": get_public_key_fingerprint(public_key_file)
    }  # fmt: skip
    with open(private_key_file, "r") as f:
        private_key = f.read()

    return jwt.encode(token, private_key, algorithm=algorithm, headers=headers)


def get_public_key_fingerprint(public_key_file):
    with open(public_key_file, "r") as f:
        public_key = RSA.import_key(f.read())

    return hashlib.sha256(public_key.export_key(format="DER")).hexdigest()


def get_public_key_fingerprint_ec(public_key_file):
    with open(public_key_file, "r") as f:
        public_key = ECC.import_key(f.read())

    return hashlib.sha256(public_key.export_key(format="DER")).hexdigest()


# -- helpers -----------------------------------------------------------------------------------


@pytest.fixture
def sim(cloudsim_factory):  # noqa: F811
    return cloudsim_factory(clouds=["akenza"])


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """ES256 and RS256 key sets from tools/akenza_keys.py (made once: RSA takes a while)."""
    base = tmp_path_factory.mktemp("akenza-keys")
    return {
        "ES256": akenza_keys.make_keys(str(base / "ec"), "dev-ec", "ES256", cert=True),
        "RS256": akenza_keys.make_keys(str(base / "rsa"), "dev-rsa", "RS256"),
    }


def client_ssl(sim):
    return ssl.create_default_context(cafile=str(sim.ca.cert_pem_path))


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def token_for(keyset, device_id, headers=None, alg=None, **claims):
    now = int(time.time())
    body = {"iat": now, "exp": now + 1200, "aud": "https://akenza.io/devices/" + device_id}
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    head = {"kid": keyset["kid"]}
    head.update(headers or {})
    head = {k: v for k, v in head.items() if v is not None}
    with open(keyset["private_pem"]) as f:
        return jwt.encode(body, f.read(), algorithm=alg or keyset["algorithm"], headers=head)


def der_signed(es256_token):
    """The same token with its R||S signature re-encoded as ASN.1 DER (what OpenSSL or
    mbedTLS return, and what JWS forbids)."""
    head, body, sig = es256_token.split(".")
    raw = base64.urlsafe_b64decode(sig + "==")
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    return "%s.%s.%s" % (head, body, base64.urlsafe_b64encode(der).rstrip(b"=").decode())


def device(sim, client_id, password, user="unused", on_message=None):
    return MQTTClient(
        client_id,
        "127.0.0.1",
        sim.ports["akenza"],
        user=user,
        password=password,
        ssl=client_ssl(sim),
        server_hostname="localhost",
        keepalive=10,
        on_message=on_message,
    )


def connect_code(sim, client_id, password, user="unused"):
    async def main():
        mqtt = device(sim, client_id, password, user)
        try:
            await mqtt.connect()
        except MQTTConnectError as exc:
            return exc.code
        await mqtt.disconnect()
        return 0

    return run(main())


# -- accepted ----------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_seed_create_jwt_is_accepted_and_its_uplink_stored(sim, keys, alg, monkeypatch):
    ks = keys[alg]
    if alg == "ES256":  # the seed's EC program: the same create_jwt, ECC.import_key
        monkeypatch.setitem(globals(), "get_public_key_fingerprint", get_public_key_fingerprint_ec)
    device_id = "dev-" + alg.lower()
    # ES256 registered as the self-signed certificate, RS256 as the public key PEM
    sim.clouds["akenza"].add_device(device_id, open(ks.get("cert_pem") or ks["public_pem"]).read())
    password = create_jwt(device_id, ks["private_pem"], ks["public_pem"], algorithm=alg)
    assert get_public_key_fingerprint(ks["public_pem"]) == ks["kid"]  # the seed's = the tool's
    tls = {"ca_certs": str(sim.ca.cert_pem_path), "cert_reqs": ssl.CERT_REQUIRED}
    publish.single(
        f"/up/device/id/{device_id}",
        '{"temperature":22}',
        qos=1,
        hostname="127.0.0.1",
        port=sim.ports["akenza"],
        tls=tls,
        auth={"username": "unused", "password": password},
        client_id=device_id,
    )
    up = sim.clouds["akenza"].wait_uplink(device_id, timeout=10)
    assert up["data"] == {"temperature": 22} and up["topic"] == "" and up["via"] == "jwt"
    assert sim.clouds["akenza"].last_claims(device_id)["aud"].endswith("/" + device_id)
    assert sim.events(device_id, "token")[0]["text"].startswith("jwt " + alg)


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_seed_create_jwt_on_tether_jwt_is_accepted(sim, keys, alg, monkeypatch):
    import tether.jwt

    ks = keys[alg]
    monkeypatch.setitem(globals(), "jwt", tether.jwt)  # the seed with `import tether.jwt as jwt`
    if alg == "ES256":
        monkeypatch.setitem(globals(), "get_public_key_fingerprint", get_public_key_fingerprint_ec)
    sim.clouds["akenza"].add_device("dev-t", open(ks["public_pem"]).read())
    password = create_jwt("dev-t", ks["private_pem"], ks["public_pem"], algorithm=alg)
    assert connect_code(sim, "dev-t", password) == 0
    assert sim.wait_event("dev-t", "token")["text"].startswith("jwt " + alg)


def test_tether_client_uplink_with_sub_topic_and_downlink(sim, keys):
    akenza = sim.clouds["akenza"]
    akenza.add_device("dev-ec", open(keys["ES256"]["public_pem"]).read())
    got = asyncio.Queue()

    async def main():
        mqtt = device(
            sim,
            "dev-ec",
            token_for(keys["ES256"], "dev-ec"),
            on_message=lambda t, p, r, q: got.put_nowait((t, bytes(p))),
        )
        await mqtt.connect()
        assert await mqtt.subscribe("/down/device/id/dev-ec/#", qos=1) == 1
        await mqtt.publish("/up/device/id/dev-ec/env/room1", b'{"t": 21.5}', qos=1)
        await mqtt.publish("/up/device/id/dev-ec", b"not json", qos=1)
        loop = asyncio.get_running_loop()
        topic = await loop.run_in_executor(
            None, akenza.send_downlink, "dev-ec", "commands", {"led": True}
        )
        first = await asyncio.wait_for(got.get(), 5)
        await loop.run_in_executor(None, akenza.send_downlink, "dev-ec", "", b"\x00raw")
        second = await asyncio.wait_for(got.get(), 5)
        await mqtt.disconnect()
        return topic, first, second

    topic, first, second = run(main())
    assert topic == "/down/device/id/dev-ec/commands"
    assert first == (topic, b'{"led": true}')
    assert second == ("/down/device/id/dev-ec", b"\x00raw")
    up = akenza.wait_uplink("dev-ec")
    assert (up["topic"], up["data"]) == ("env/room1", {"t": 21.5})
    assert len(akenza.uplinks("dev-ec")) == 1  # the non-JSON one was refused, and logged
    assert "not json" not in json.dumps(akenza.uplinks("dev-ec"))
    sim.wait_event("dev-ec", "bad-payload")


# -- refused, with the claim named -------------------------------------------------------------


def _refusals(keys):
    ec, rs = keys["ES256"], keys["RS256"]
    now = int(time.time())
    return {
        "hs256": (jwt.encode({"aud": "x"}, "k" * 32, algorithm="HS256"), "alg: 'HS256'"),
        "none": (jwt.encode({"exp": now + 60}, None, algorithm="none"), "alg: 'none'"),
        "alg-for-key": (token_for(rs, "dev-ec", headers={"kid": ec["kid"]}), "alg: RS256"),
        "kid": (token_for(ec, "dev-ec", headers={"kid": "00" * 32}), "kid: '0000"),
        "der": (der_signed(token_for(ec, "dev-ec")), "signature: ES256 signature is 7"),
        "other-key": (token_for(rs, "dev-ec", headers={"kid": None}), "alg: RS256"),
        "aud": (token_for(ec, "dev-ec", aud="https://akenza.io/devices/dev-2"), "aud: "),
        "no-aud": (token_for(ec, "dev-ec", aud=None), "aud: missing"),
        "exp": (token_for(ec, "dev-ec", iat=now - 100, exp=now - 10), "exp: expired"),
        "iat": (token_for(ec, "dev-ec", iat=now + 3600, exp=now + 4000), "iat: 3"),
        "sub": (token_for(ec, "dev-ec", sub="dev-2"), "sub: 'dev-2'"),
        "garbage": ("a.b", "token: a JWT has 3"),
        "signature": (_foreign_es256("dev-ec"), "signature: does not verify"),
    }


def _foreign_es256(device_id):
    """A well-formed ES256 token, no kid, signed by a key nobody registered."""
    from cryptography.hazmat.primitives.asymmetric import ec

    now = int(time.time())
    claims = {"iat": now, "exp": now + 60, "aud": "https://akenza.io/devices/" + device_id}
    return jwt.encode(claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256")


def test_bad_tokens_get_connack_5_with_the_claim_named(sim, keys):
    akenza = sim.clouds["akenza"]
    akenza.add_device("dev-ec", open(keys["ES256"]["public_pem"]).read())
    cases = _refusals(keys)
    for name, (token, reason) in cases.items():
        after = sim.last_seq()
        assert connect_code(sim, "dev-ec", token) == 5, name
        event = sim.wait_event("dev-ec", "refused", after=after, timeout=5)
        assert event["text"].startswith("JWT refused: " + reason), (name, event["text"])
        assert token not in event["text"]  # never the credential itself
    assert sim.device("dev-ec", "akenza").connects == 0
    # and the good token, for contrast, on the same device
    assert connect_code(sim, "dev-ec", token_for(keys["ES256"], "dev-ec")) == 0


def test_der_signature_names_the_encoding(keys):
    ec = jwtcheck.PublicKey(open(keys["ES256"]["public_pem"]).read())
    with pytest.raises(jwtcheck.TokenError) as err:
        jwtcheck.verify(der_signed(token_for(keys["ES256"], "d")), [ec], "d", time.time())
    assert err.value.claim == "signature" and "DER" in err.value.reason


def test_unknown_device_missing_password_and_claim_knobs(sim, keys):
    akenza = sim.clouds["akenza"]
    akenza.add_device("dev-ec", open(keys["ES256"]["public_pem"]).read())
    good = token_for(keys["ES256"], "dev-ec")
    assert connect_code(sim, "nobody", good) == 5
    assert "not a registered device id" in sim.wait_event("nobody", "refused")["text"]
    assert connect_code(sim, "dev-ec", None, user=None) == 4  # no credentials at all
    assert "no password" in sim.wait_event("dev-ec", "refused")["text"]
    now = int(time.time())
    ahead = token_for(keys["ES256"], "dev-ec", iat=now + 30, exp=now + 600)
    assert connect_code(sim, "dev-ec", ahead) == 0  # within the default 60 s skew
    sim.set_knobs(akenza_iat_skew_s=5)
    assert connect_code(sim, "dev-ec", ahead) == 5
    sim.set_knobs(akenza_max_lifetime_s=300)
    assert connect_code(sim, "dev-ec", good) == 5  # 20 min > 5 min
    assert "exp: lifetime 1200 s" in sim.events("dev-ec", "refused")[-1]["text"]


def test_a_second_key_is_chosen_by_kid_or_tried_without_one(sim, keys):
    akenza = sim.clouds["akenza"]
    akenza.add_device("multi", open(keys["RS256"]["public_pem"]).read())
    akenza.add_device("multi", open(keys["ES256"]["cert_pem"]).read())
    assert [k.algorithm for k in akenza.device("multi").keys] == ["RS256", "ES256"]
    assert connect_code(sim, "multi", token_for(keys["ES256"], "multi")) == 0
    assert connect_code(sim, "multi", token_for(keys["RS256"], "multi")) == 0
    no_kid = token_for(keys["ES256"], "multi", headers={"kid": None})
    assert "kid" not in jwt.get_unverified_header(no_kid)
    assert connect_code(sim, "multi", no_kid) == 0


# -- ACLs, uplink-secret mode, expiry ----------------------------------------------------------


def test_acl_keeps_each_device_to_its_own_topics(sim, keys):
    akenza = sim.clouds["akenza"]
    akenza.add_device("dev-a", open(keys["ES256"]["public_pem"]).read())
    akenza.add_device("dev-b", open(keys["RS256"]["public_pem"]).read())

    async def main():
        a = device(sim, "dev-a", token_for(keys["ES256"], "dev-a"))
        await a.connect()
        for stolen in ("/down/device/id/dev-b/#", "/down/device/id/+/#", "/down/#", "#"):
            with pytest.raises(MQTTError):
                await a.subscribe(stolen, qos=1)
        assert await a.subscribe("/down/device/id/dev-a/config", qos=1) == 1
        await a.publish("/up/device/id/dev-b", b'{"spoof": 1}', qos=1)
        await a.publish("/down/device/id/dev-a/x", b'{"loop": 1}', qos=1)
        await a.publish("/up/device/id/dev-a", b'{"mine": 1}', qos=1)
        assert a.connected  # a denial is not a disconnect
        await a.disconnect()

    run(main())
    assert akenza.wait_uplink("dev-a")["data"] == {"mine": 1}
    assert akenza.uplinks("dev-b") == []
    denied = [e["text"] for e in sim.events("dev-a", "denied")]
    assert "publish /up/device/id/dev-b (ACL)" in denied
    assert "subscribe /down/device/id/dev-b/# (ACL)" in denied


def test_uplink_secret_mode(sim, keys):
    akenza = sim.clouds["akenza"]
    akenza.add_connector("conn-1", "s3cret-xyz")
    akenza.add_device("dev-s")  # no key needed in this mode

    async def main():
        mqtt = device(sim, "any-client", "s3cret-xyz", user="conn-1")
        await mqtt.connect()
        await mqtt.publish("/up/s3cret-xyz/id/dev-s", b'{"n": 1}', qos=1)
        await mqtt.publish("/up/s3cret-xyz/id/ghost", b'{"n": 2}', qos=1)
        await mqtt.publish("/up/device/id/dev-s", b'{"n": 3}', qos=1)  # JWT topic: denied
        with pytest.raises(MQTTError):
            await mqtt.subscribe("/down/device/id/dev-s/#", qos=1)
        await mqtt.disconnect()

    run(main())
    up = akenza.wait_uplink("dev-s")
    assert (up["data"], up["via"]) == ({"n": 1}, "uplink-secret")
    sim.wait_event("ghost", "unknown-device")
    assert len(akenza.uplinks("dev-s")) == 1
    assert connect_code(sim, "any-client", "wrong", user="conn-1") == 5
    assert sim.events("any-client", "refused")[-1]["text"] == "wrong secret for connector conn-1"
    assert "s3cret" not in json.dumps(sim.events())


def test_disconnect_at_exp_knob(sim, keys):
    akenza = sim.clouds["akenza"]
    akenza.add_device("dev-ec", open(keys["ES256"]["public_pem"]).read())
    sim.set_knobs(akenza_disconnect_at_exp=True)
    now = int(time.time())

    async def main():
        mqtt = device(sim, "dev-ec", token_for(keys["ES256"], "dev-ec", iat=now, exp=now + 2))
        await mqtt.connect()
        start = time.time()
        await asyncio.wait_for(mqtt.wait_closed(), 5)
        return time.time() - start

    took = run(main())
    assert took < 3.5
    assert sim.wait_event("dev-ec", "expired")["text"] == "token expired: dropped"
    sim.wait_connected("dev-ec", connected=False, timeout=5, cloud="akenza")
    assert time.time() >= now + 2


def test_dashboard_downlink_route_and_state(sim, keys):
    import urllib.request

    akenza = sim.clouds["akenza"]
    akenza.add_device("dev-ec", open(keys["ES256"]["public_pem"]).read())
    req = urllib.request.Request(
        sim.dashboard_url + "api/akenza/device/dev-ec/downlink",
        data=json.dumps({"topic": "config", "data": {"every": 60}}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert json.loads(resp.read()) == {"topic": "/down/device/id/dev-ec/config"}
    assert akenza.device("dev-ec").downlinks == [("config", b'{"every": 60}')]
    with urllib.request.urlopen(sim.dashboard_url + "api/state", timeout=5) as resp:
        state = json.loads(resp.read())
    assert state["akenza"]["dev-ec"]["kids"] == [keys["ES256"]["kid"]]
    assert "akenza_disconnect_at_exp" in state["knobs"]


def test_registration_refuses_keys_akenza_does_not_take():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    pem = p384.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(ValueError, match="P-256"):
        jwtcheck.PublicKey(pem)
    with pytest.raises(ValueError, match="not a PEM"):
        jwtcheck.PublicKey(b"hello")
