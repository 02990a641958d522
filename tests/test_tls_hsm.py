"""CPython with the device key in a PKCS#11 token (SoftHSM2), end to end against mosquitto.

The key is imported into a fresh SoftHSM2 token (marked sensitive: it cannot be read back);
the client authenticates to a mosquitto that requires a certificate, through the PKCS#11
engine (tether.hsm), then publishes and receives its own message.
"""

import json
import os
import subprocess
import sys

import pytest
from brokers import mosquitto
from mpy import LIB, ROOT

sys.path.insert(0, str(ROOT))
from tools.pki import make_pki  # noqa: E402

pytestmark = pytest.mark.timeout(120)

PIN = "hsm-Pin-7391"
SO_PIN = "so-Pin-2208"
TOKEN = "tether"
KEY_URI = "pkcs11:token=%s;object=device;type=private" % TOKEN
CERT_URI = "pkcs11:token=%s;object=device;type=cert" % TOKEN
MODULE = "/usr/lib/softhsm/libsofthsm2.so"

CLIENT_SCRIPT = r"""
import asyncio, json, sys
from tether import creds, log
import tether.arduino.ssl_params as ssl_params
from tether.mqtt import MQTTClient

a = json.loads(open(sys.argv[1]).read())
log.basicConfig(level=log.DEBUG)
res = {"ok": False, "stage": "credentials"}
got = []
try:
    if a["route"] == "ssl_params":  # the Arduino client's translation of the seed's API
        ctx = ssl_params.context_from_ssl_params(a["ssl_params"], a["port"])
    else:
        ctx = creds.tls_context(ca=a["ca"], cert=a["cert"], key=a["key"])
    res["stage"] = "connect"

    async def main():
        c = MQTTClient(
            a["client_id"], "127.0.0.1", a["port"], ssl=ctx, server_hostname="localhost",
            on_message=lambda t, p, r, q: got.append(p),
        )
        await c.connect()
        await c.subscribe("hsm/t", qos=1)
        await c.publish("hsm/t", b"signed in the token", qos=1)
        for _ in range(200):
            if got:
                break
            await asyncio.sleep(0.01)
        await c.disconnect()

    asyncio.run(main())
    res["ok"] = True
except Exception as exc:
    res["error"] = type(exc).__name__
    res["message"] = str(exc)
res["received"] = [bytes(p).decode() for p in got]
print("RESULT " + json.dumps(res))
"""


def _run(cmd, env, **kw):
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, **kw)


class Setup:
    pass


@pytest.fixture(scope="module")
def hsm_setup(tmp_path_factory):
    if not os.path.exists(MODULE):
        pytest.fail("SoftHSM2 is not installed (apt-get install softhsm2; .ci/run does)")
    d = tmp_path_factory.mktemp("hsm")
    os.chmod(d, 0o755)
    pki = make_pki(str(d / "pki"))
    tokens = d / "tokens"
    tokens.mkdir()
    conf = d / "softhsm2.conf"
    conf.write_text(
        "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n" % tokens
    )
    env = dict(os.environ, SOFTHSM2_CONF=str(conf), PYTHONPATH=str(LIB))
    key_pk8 = d / "device.pk8.pem"  # softhsm2-util imports PKCS#8 PEM
    _run(["openssl", "pkey", "-in", pki["device_key_pem"], "-out", str(key_pk8)], env, check=True)
    steps = [
        ["softhsm2-util", "--init-token", "--free", "--label", TOKEN]
        + ["--pin", PIN, "--so-pin", SO_PIN],
        ["softhsm2-util", "--import", str(key_pk8), "--token", TOKEN]
        + ["--label", "device", "--id", "01", "--pin", PIN],
        ["pkcs11-tool", "--module", MODULE, "--token-label", TOKEN, "--login", "--pin", PIN]
        + ["--write-object", pki["device_cert_der"], "--type", "cert"]
        + ["--id", "01", "--label", "device"],
    ]
    for cmd in steps:
        p = _run(cmd, env)
        assert p.returncode == 0, "%s failed:\n%s%s" % (cmd[0], p.stdout, p.stderr)
    rsa_pem = d / "rsa.pk8.pem"  # a second key, RSA, for the RS256 signer
    _run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]
         + ["-out", str(rsa_pem)], env, check=True)  # fmt: skip
    from cryptography.hazmat.primitives import serialization as ser

    rsa_spki = (
        ser.load_pem_private_key(rsa_pem.read_bytes(), None)
        .public_key()
        .public_bytes(ser.Encoding.DER, ser.PublicFormat.SubjectPublicKeyInfo)
    )
    p = _run(
        ["softhsm2-util", "--import", str(rsa_pem), "--token", TOKEN]
        + ["--label", "rsa", "--id", "02", "--pin", PIN],
        env,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    key_pk8.unlink()  # from here on the key exists only inside the token
    rsa_pem.unlink()
    tls = [
        "cafile %s" % pki["ca_cert_pem"],
        "certfile %s" % pki["server_cert_pem"],
        "keyfile %s" % pki["server_key_pem"],
        "require_certificate true",
        "tls_version tlsv1.2",
    ]
    with mosquitto(extra_config=tls, tmp_dir=str(d)) as broker:
        s = Setup()
        s.pki, s.env, s.port, s.broker, s.dir = pki, env, broker.port, broker, d
        s.rsa_spki = rsa_spki
        yield s


def run_client(setup, args, name):
    args = dict(args, port=setup.port, client_id="hsm-" + name)
    argfile = setup.dir / ("args-%s.json" % name)
    argfile.write_text(json.dumps(args))
    script = setup.dir / "hsm_client.py"
    script.write_text(CLIENT_SCRIPT)
    p = _run([sys.executable, str(script), str(argfile)], setup.env)
    out = p.stdout + p.stderr
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:]), out
    raise AssertionError("no RESULT:\n" + out)


def ssl_params(setup, **kw):
    p = {
        "keyfile": KEY_URI,
        "certfile": CERT_URI,
        "cafile": setup.pki["ca_cert_pem"],
        "module_path": MODULE,
        "pin": PIN,
    }
    p.update(kw)
    return p


def test_token_key_authenticates_to_mosquitto_with_ssl_params(hsm_setup):
    res, out = run_client(
        hsm_setup, {"route": "ssl_params", "ssl_params": ssl_params(hsm_setup)}, "a"
    )
    assert res["ok"], out
    assert res["received"] == ["signed in the token"], out
    assert "New client connected" in hsm_setup.broker.log()
    assert PIN not in out  # the PIN is never printed, even at DEBUG


def test_pkcs11_uri_with_pin_value_through_creds(hsm_setup):
    args = {
        "route": "creds",
        "ca": hsm_setup.pki["ca_cert_der"],
        "cert": hsm_setup.pki["device_cert_der"],
        "key": KEY_URI + "?pin-value=" + PIN,
    }
    res, out = run_client(hsm_setup, args, "b")
    assert res["ok"], out
    assert res["received"] == ["signed in the token"], out
    assert PIN not in out


def test_wrong_pin_is_refused(hsm_setup):
    params = ssl_params(hsm_setup, pin="wrong-98765")
    res, out = run_client(hsm_setup, {"route": "ssl_params", "ssl_params": params}, "c")
    assert not res["ok"] and res["stage"] == "credentials", out
    assert res["error"] == "HSMError" and "wrong PIN" in res["message"], out
    assert "wrong-98765" not in out


def test_missing_key_object_is_refused(hsm_setup):
    params = ssl_params(hsm_setup, keyfile=KEY_URI.replace("object=device", "object=nope"))
    res, out = run_client(hsm_setup, {"route": "ssl_params", "ssl_params": params}, "d")
    assert not res["ok"] and res["error"] == "HSMError", out
    assert "not found in the token" in res["message"], out


def test_token_key_not_matching_the_certificate_is_refused(hsm_setup):
    params = ssl_params(hsm_setup, certfile=hsm_setup.pki["client_unknown_ca_cert_der"])
    res, out = run_client(hsm_setup, {"route": "ssl_params", "ssl_params": params}, "e")
    assert not res["ok"] and res["error"] == "CredentialError", out
    assert "does not match the certificate" in res["message"], out


SIGNER_SCRIPT = r"""
import json, sys
from tether import creds

a = json.loads(open(sys.argv[1]).read())
res = {}
try:
    s = creds.load_signer(a["uri"], module_path=a.get("module"), pin=a.get("pin"))
    res["algorithm"] = s.algorithm
    res["spki"] = s.public_key_der().hex()
    res["sigs"] = [s.sign(m.encode()).hex() for m in a["messages"]]
except Exception as exc:
    res["error"] = type(exc).__name__
    res["message"] = str(exc)
print("RESULT " + json.dumps(res))
"""


def run_signer(setup, args, name):
    argfile = setup.dir / ("signer-%s.json" % name)
    argfile.write_text(json.dumps(args))
    script = setup.dir / "hsm_signer.py"
    script.write_text(SIGNER_SCRIPT)
    p = _run([sys.executable, str(script), str(argfile)], setup.env)
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:]), p.stdout + p.stderr
    raise AssertionError("no RESULT:\n" + p.stdout + p.stderr)


def test_pkcs11_signer_signs_es256_that_verifies_with_the_certificate_key(hsm_setup):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, utils

    messages = ["header.payload", "", "x" * 5000]
    args = {"uri": KEY_URI, "module": MODULE, "pin": PIN, "messages": messages}
    res, out = run_signer(hsm_setup, args, "es256")
    assert "error" not in res, out
    assert res["algorithm"] == "ES256"
    with open(hsm_setup.pki["device_cert_der"], "rb") as f:
        pub = x509.load_der_x509_certificate(f.read()).public_key()
    spki = pub.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert bytes.fromhex(res["spki"]) == spki
    for m, sig in zip(messages, res["sigs"]):
        raw = bytes.fromhex(sig)
        assert len(raw) == 64  # JWS form, not DER
        der = utils.encode_dss_signature(int.from_bytes(raw[:32], "big"), int(raw[32:].hex(), 16))
        pub.verify(der, m.encode(), ec.ECDSA(hashes.SHA256()))  # raises if it does not verify
    assert PIN not in out


def test_pkcs11_signer_wrong_pin_and_missing_key(hsm_setup):
    args = {"uri": KEY_URI, "module": MODULE, "pin": "wrong-5555", "messages": []}
    res, out = run_signer(hsm_setup, args, "badpin")
    assert res.get("error") == "HSMError" and "wrong PIN" in res["message"], out
    assert "wrong-5555" not in out
    args = {"uri": KEY_URI + "?pin-value=" + PIN, "module": MODULE, "messages": ["m"]}
    res, out = run_signer(hsm_setup, args, "uripin")  # the PIN inside the URI works too
    assert res.get("algorithm") == "ES256" and len(res["sigs"]) == 1, out
    assert PIN not in out


def test_pkcs11_signer_signs_rs256_with_an_rsa_token_key(hsm_setup):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    uri = "pkcs11:token=%s;object=rsa;type=private" % TOKEN
    args = {"uri": uri, "module": MODULE, "pin": PIN, "messages": ["header.payload"]}
    res, out = run_signer(hsm_setup, args, "rs256")
    assert res.get("algorithm") == "RS256", out
    spki = bytes.fromhex(res["spki"])
    assert spki == hsm_setup.rsa_spki, out
    pub = load_der_public_key(spki)
    sig = bytes.fromhex(res["sigs"][0])
    assert len(sig) == 256  # len(n): PKCS#1 v1.5, not DER
    pub.verify(sig, b"header.payload", padding.PKCS1v15(), hashes.SHA256())
