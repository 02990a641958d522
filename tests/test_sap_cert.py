"""tools/sap_cert.py on bundles made like SAP's (tools/cloudsim/plugins/sap/bundle.py: an
encrypted PKCS#8 RSA key, PBEWithSHA1AndDESede, then the certificate), and that encryption
itself checked with `cryptography` and the openssl command line."""

import json
import os
import shutil
import ssl
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from tether import keys as tkeys

from tools import sap_cert
from tools.cloudsim.pki import TestCA as CA
from tools.cloudsim.plugins.sap import bundle as bundles

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Two devices' bundles from a test CA: {"ca", "one": (key, cert, secret, pem), "two"}."""
    ca = CA(tmp_path_factory.mktemp("ca"))
    out = {"ca": ca}
    for name in ("one", "two"):
        key, cert = bundles.issue_certificate(ca.key, ca.cert, "dev-" + name)
        secret = bundles.new_secret()
        out[name] = (key, cert, secret, bundles.make_bundle(key, cert, secret))
    return out


def _public(key):
    key = key.public_key() if hasattr(key, "private_bytes") else key
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_bundle_looks_like_sap_s(made):
    pem = made["one"][3]
    assert pem.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    assert pem.index("-----BEGIN CERTIFICATE-----") > pem.index("-----END ENCRYPTED PRIVATE KEY")
    # the key block's algorithm is pbeWithSHAAnd3-KeyTripleDES-CBC
    import base64

    body = pem.split("-----")[2]
    info = base64.b64decode(body)
    assert bytes.fromhex("060a2a864886f70d010c0103") in info[:30]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl command")
def test_openssl_unlocks_the_bundle_like_seed_002_does(made, tmp_path):
    key, cert, secret, pem = made["one"]
    (tmp_path / "b.pem").write_text(pem)
    # seed 002's first step: openssl rsa -in <download>.pem -out private.key -passin pass:S
    cmd = ["openssl", "rsa", "-in", str(tmp_path / "b.pem"), "-out", str(tmp_path / "k.pem")]
    res = subprocess.run(cmd + ["-passin", "pass:" + secret], capture_output=True, timeout=30)
    assert res.returncode == 0, res.stderr
    clear = serialization.load_pem_private_key((tmp_path / "k.pem").read_bytes(), None)
    assert _public(clear) == _public(key)
    bad = subprocess.run(cmd + ["-passin", "pass:nope"], capture_output=True, timeout=30)
    assert bad.returncode != 0


def test_convert_writes_board_and_cpython_files(made, tmp_path):
    key, cert, secret, pem = made["one"]
    conv = sap_cert.convert(pem, secret)
    assert conv.was_encrypted and conv.others == []
    paths = sap_cert.write(conv, str(tmp_path))
    for name in ("key.der", "key.pem", "device.pem"):
        assert stat.S_IMODE(os.stat(paths[name]).st_mode) == 0o600
    spki = _public(key)
    board = tkeys.load_private_key(Path(paths["key.der"]).read_bytes())  # what a board runs
    assert board.algorithm == "RS256" and board.public_key_der() == spki
    loaded = serialization.load_der_private_key(Path(paths["key.der"]).read_bytes(), None)
    assert _public(loaded) == spki
    assert Path(paths["cert.der"]).read_bytes() == cert.public_bytes(serialization.Encoding.DER)
    # CPython's ssl takes both the pair and the single file (seed 002's newcert.pem)
    ssl.create_default_context().load_cert_chain(paths["cert.pem"], paths["key.pem"])
    ssl.create_default_context().load_cert_chain(paths["device.pem"])
    with pytest.raises(sap_cert.SapCertError, match="exists"):
        sap_cert.write(conv, str(tmp_path))


def test_the_api_json_carries_its_own_secret(made):
    key, _, secret, pem = made["two"]
    conv = sap_cert.convert(json.dumps({"secret": secret, "pem": pem}))
    assert _public(conv.key) == _public(key)


@pytest.mark.parametrize(
    "case, message",
    [
        ("wrong-secret", "the secret does not unlock the private key"),
        ("no-secret", "the private key is encrypted: give the secret"),
        ("no-key", "the bundle has no private key"),
        ("no-cert", "no -----BEGIN CERTIFICATE-----"),
        ("mismatch", "the private key does not match the certificate (CN=dev-two)"),
        ("p12", "binary (a .p12"),
        ("empty", "no PEM block"),
        ("bad-json", 'no "pem" field'),
    ],
)
def test_each_failure_says_what_is_wrong(made, case, message):
    key, cert, secret, pem = made["one"]
    key_block = pem[: pem.index("-----BEGIN CERTIFICATE-----")]
    other_cert = made["two"][3][made["two"][3].index("-----BEGIN CERTIFICATE-----") :]
    bundle, give = {
        "wrong-secret": (pem, "not-the-secret"),
        "no-secret": (pem, None),
        "no-key": (pem[pem.index("-----BEGIN CERTIFICATE-----") :], secret),
        "no-cert": (key_block, secret),
        "mismatch": (key_block + other_cert, secret),
        "p12": (b"\x30\x82\x09\x00" + os.urandom(40), secret),
        "empty": ("hello", secret),
        "bad-json": (json.dumps({"secret": secret}), None),
    }[case]
    with pytest.raises(sap_cert.SapCertError) as err:
        sap_cert.convert(bundle, give)
    assert message in str(err.value)


def _cli(args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "tools.sap_cert"] + args,
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=30,
        env=dict(os.environ, **(env or {})),
        stdin=subprocess.DEVNULL,
    )


def test_command_line(made, tmp_path):
    key, cert, secret, pem = made["one"]
    (tmp_path / "download.pem").write_text(pem)
    out = tmp_path / "out"
    bundle = str(tmp_path / "download.pem")
    res = _cli([bundle, "--secret-env", "SAP_SECRET", "--out", str(out)], {"SAP_SECRET": secret})
    assert res.returncode == 0, res.stderr
    assert "certificate: CN=dev-one" in res.stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "cert.der",
        "cert.pem",
        "device.pem",
        "key.der",
        "key.pem",
    ]
    bad = _cli([bundle, "--secret", "wrong", "--out", str(tmp_path / "x")])
    assert bad.returncode == 1
    assert bad.stderr.startswith("sap_cert: the secret does not unlock the private key")
    assert not (tmp_path / "x" / "key.der").exists()
    again = _cli([bundle, "--secret", secret, "--out", str(out)])
    assert again.returncode == 1 and "exists" in again.stderr
