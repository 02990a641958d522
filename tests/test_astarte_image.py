"""The blocks an Astarte image leaves out unless asked (tools/components.py): certificate
auth, agent registration (tether-jwt, tether-rsa), the key loaders (tether-keyload), the
P-256 comb table (tether-p256table), the interface JSON parser (tether-astarte-json).

The image's exact files run a script on the MicroPython unix port: the device makes its key
and CSR, reads its key back, builds its TLS contexts and reads compact interfaces; what
needs a missing block raises an error naming it. The blocks' fallbacks are checked on
CPython too (same signatures without the comb table; RSA keys refused without tether-rsa).
"""

import json
import sys

import pytest
from mpy import ROOT, micropython_binary
from test_certauth import _run, image_dir

sys.path.insert(0, str(ROOT))
from tools.pki import make_pki  # noqa: E402

# Runs in an Astarte image folder (no certauth, JWT, RSA, comb table, interface parser), with
# `D` (the PKI files), `T` (an empty folder) and `I` (one interface as x.json and x.ifc).
ASTARTE = r"""
import hashlib
import sys

from tether.errors import CredentialError

D, T, I = sys.argv[1:4]
MP = sys.implementation.name == "micropython"
for name in (
    "tether.creds", "tether.certs", "tether.signer", "tether.hal.se05x", "tether.jwt",
    "tether.rsa", "tether.p256_table", "tether.astarte.interfaces", "tether.nocert",
    "tether.keyload",
):
    try:
        __import__(name)
    except ImportError:
        continue
    raise AssertionError(name + " is in this image")

# the device's key and CSR: the comb table's absence costs time, not results (the image is
# a board's: this script runs on the MicroPython unix port)
from tether import csr, keys, p256

k = keys.generate_p256()
sig = k.sign(b"abc")
x, y = p256.decode_point(k.public_point())
r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
assert p256.verify_digest(x, y, hashlib.sha256(b"abc").digest(), r, s)
assert p256.public_point(1) == (p256.GX, p256.GY)
assert "CERTIFICATE REQUEST" in csr.make_pem(k, [("CN", "realm/dev"), ("O", "Devices")])
print("key and csr ok")

# the device reads back the key it wrote without the key loaders, which say what to add
from tether.astarte.certificate import Pairing, _own_key

assert _own_key(k.to_pem()).public_point() == k.public_point()
for data in (k.to_pem(), k.to_der()):
    try:
        keys.load_private_key(data)
        raise AssertionError("key loaded without tether.keyload")
    except CredentialError as exc:
        assert "add the tether-keyload component" in str(exc), exc
p = Pairing("dev", "realm", "s", None, T + "/crypto")
csr1 = p.make_csr()  # a new key, kept, and its CSR
import os

os.remove(T + "/crypto/device.csr")  # the CSR lost: made again from the kept key
csr2 = Pairing("dev", "realm", "s", None, T + "/crypto").make_csr()
assert csr2 == csr1 and p.counts["keys"] == 1  # RFC 6979: the same key signs the same CSR

from tether.astarte import ValidationError, sync
from tether.astarte.device import DeviceMqtt
from tether.astarte.errors import InterfaceFileDecodeError

with open(D + "/ca.der", "rb") as f:
    CA = f.read()
# an SE05x key: refused when the client is made (before a firmware arms its watchdog)
try:
    DeviceMqtt("dev", "realm", "s", "https://127.0.0.1:1", T, ca=CA, key="se05x:token=0x64")
    raise AssertionError("SE05x key accepted without tether-certauth")
except CredentialError as exc:
    assert "add the tether-certauth component" in str(exc), exc
d = DeviceMqtt("dev", "realm", "s", "https://127.0.0.1:1", T, ca=CA)

# interfaces: the compact form; JSON names what to do
d.add_interface_from_file(I + ".ifc")
iface = d.interfaces["org.tether.Test"]
try:
    iface.check_individual("/v", "x")
    raise AssertionError("a str accepted for an integer")
except ValidationError:
    pass
for fn, arg in ((d.add_interface_from_file, I + ".json"), (d.add_interface_from_json, {})):
    try:
        fn(arg)
        raise AssertionError("interface JSON read without the parser")
    except InterfaceFileDecodeError as exc:
        assert "tether-astarte-json" in str(exc) and "tools.astarte_ifc" in str(exc), exc
print("interfaces ok")

# MicroPython: the MQTT and pairing contexts from the device's PEM key and certificate,
# by the port's TLS alone (CPython: a pip install has tether.certs for its ssl module)
if MP:
    with open(D + "/key.pem", "rb") as f:
        d._key_pem = f.read()
    with open(D + "/cert.pem", "rb") as f:
        d._cert_pem = f.read()
    assert sync.tls_context(d) is not None
    d.ignore_ssl_errors = True
    assert getattr(sync.tls_context(d), "tether_insecure", False)
    assert d._api().context() is not None
    print("tls ok")
print("done")
"""


@pytest.fixture(scope="module")
def pki_files(tmp_path_factory):
    """ca.der, and the device's key.pem and cert.pem (the Astarte pairing's files)."""
    d = tmp_path_factory.mktemp("pki")
    paths = make_pki(str(d / "all"))
    (d / "ca.der").write_bytes(open(paths["ca_cert_der"], "rb").read())
    (d / "key.pem").write_bytes(open(paths["device_0_key_pem"], "rb").read())
    (d / "cert.pem").write_bytes(open(paths["device_0_cert_pem"], "rb").read())
    return d


@pytest.fixture(scope="module")
def astarte_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("astarte")
    iface = {
        "interface_name": "org.tether.Test",
        "version_major": 1,
        "version_minor": 0,
        "type": "datastream",
        "ownership": "device",
        "mappings": [{"endpoint": "/v", "type": "integer"}],
    }
    (d / "x.json").write_text(json.dumps(iface))
    from tools import astarte_ifc

    (d / "x.ifc").write_text(json.dumps(astarte_ifc.compile_file(d / "x.json")))
    (d / "persist").mkdir()
    return d


def test_an_astarte_image_pairs_without_the_optional_blocks(pki_files, astarte_files, tmp_path):
    img = image_dir(tmp_path / "img", ("astarte",))
    script = tmp_path / "check.py"
    script.write_text(ASTARTE)
    args = [str(script), str(pki_files), str(astarte_files / "persist"), str(astarte_files / "x")]
    env = {"MICROPYPATH": ".frozen:%s" % img, "PATH": "/usr/bin:/bin"}
    out = _run([micropython_binary()] + args, env, tmp_path)
    assert "key and csr ok" in out and "interfaces ok" in out and "tls ok" in out
    # (CPython: a pip install has every module, and DeviceMqtt preloads some of them there)


def test_p256_without_its_comb_table_gives_the_same_keys_and_signatures(monkeypatch):
    # tether-p256table only makes k*G faster: RFC 6979 signatures are deterministic, so the
    # same key signs the same bytes with and without it
    import hashlib

    sys.path.insert(0, str(ROOT / "lib"))
    from tether import p256

    d = 0xC9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721  # RFC 6979 A.2.5
    digest = hashlib.sha256(b"sample").digest()
    with_table = (p256.public_point(d), p256.sign_digest(d, digest))
    monkeypatch.setitem(sys.modules, "tether.p256_table", None)  # import raises ImportError
    calls = []
    mul = p256._mul
    monkeypatch.setattr(p256, "_mul", lambda k, pt: calls.append(k) or mul(k, pt))
    without = (p256.public_point(d), p256.sign_digest(d, digest))
    assert without == with_table and calls[0] == d and len(calls) == 2  # d*G, then k*G
    x, y = without[0]
    assert x == 0x60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6
    assert p256.verify_digest(x, y, digest, *without[1])


def test_an_image_without_tether_rsa_refuses_rsa_keys_naming_it(monkeypatch):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    sys.path.insert(0, str(ROOT / "lib"))
    from tether import keys
    from tether.errors import CredentialError

    data = rsa.generate_private_key(public_exponent=65537, key_size=1024).private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    assert keys.load_private_key(data).algorithm == "RS256"
    monkeypatch.setitem(sys.modules, "tether.rsa", None)  # import raises ImportError
    with pytest.raises(CredentialError, match="add the tether-rsa component"):
        keys.load_private_key(data)
