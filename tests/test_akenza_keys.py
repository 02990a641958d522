"""tools/akenza_keys.py: the key pair for an akenza device, checked with `cryptography`,
PyJWT and Tether's own key loader (what the board will run)."""

import hashlib
import os
import stat
import subprocess
import sys
from pathlib import Path

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from tether import keys as tkeys

from tools import akenza_keys
from tools.cloudsim.plugins.akenza.token import PublicKey

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("alg, stem", [("ES256", "ec"), ("RS256", "rsa")])
def test_files_kid_and_the_board_key(tmp_path, alg, stem):
    out = akenza_keys.make_keys(str(tmp_path), "dev-1", alg, cert=True)
    assert out["private_der"] == str(tmp_path / (stem + "_private.der"))
    for name in ("private_der", "private_pem"):
        assert stat.S_IMODE(os.stat(out[name]).st_mode) == 0o600
    public = serialization.load_pem_public_key(Path(out["public_pem"]).read_bytes())
    spki = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert out["kid"] == hashlib.sha256(spki).hexdigest()
    # the certificate carries the same key, CN = device id, self-signed
    cert = x509.load_pem_x509_certificate(Path(out["cert_pem"]).read_bytes())
    assert cert.subject == cert.issuer
    assert cert.subject.rfc4514_string() == "CN=dev-1"
    assert PublicKey(Path(out["cert_pem"]).read_bytes()).kid == out["kid"]
    # the board's DER key, read by Tether, is the same key with the same kid
    board = tkeys.load_private_key(Path(out["private_der"]).read_bytes())
    assert board.algorithm == alg
    assert board.public_key_der() == spki
    assert tkeys.fingerprint(board.public_key_der()) == out["kid"]
    # the CPython PEM signs a token that verifies with the public key
    token = jwt.encode({"a": 1}, Path(out["private_pem"]).read_text(), algorithm=alg)
    assert jwt.decode(token, public, algorithms=[alg]) == {"a": 1}


def test_never_overwrites_without_force(tmp_path):
    first = akenza_keys.make_keys(str(tmp_path), "dev-1")
    with pytest.raises(FileExistsError):
        akenza_keys.make_keys(str(tmp_path), "dev-1")
    assert akenza_keys.make_keys(str(tmp_path), "dev-1", force=True)["kid"] != first["kid"]
    with pytest.raises(ValueError):
        akenza_keys.make_keys(str(tmp_path), "dev-1", "HS256")


def test_command_line_prints_the_kid(tmp_path):
    cmd = [sys.executable, "-m", "tools.akenza_keys", "dev-9", "--cert", "--out", str(tmp_path)]
    res = subprocess.run(cmd, cwd=str(ROOT), capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    kid = [ln.split()[-1] for ln in res.stdout.splitlines() if ln.startswith("kid: ")][0]
    assert PublicKey((tmp_path / "ec_public.pem").read_bytes()).kid == kid
    assert "ec_cert.pem" in res.stdout  # what to paste, when a certificate was asked for
    again = subprocess.run(cmd, cwd=str(ROOT), capture_output=True, text=True, timeout=30)
    assert again.returncode == 1 and "exists" in again.stderr
