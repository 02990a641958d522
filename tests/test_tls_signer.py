"""Signers sign for real: the SE05x signer on the unix port and CPython, verified here.

The fake SE05x's key object signs through tools/fake_se_signer.py (a real P-256 key on
127.0.0.1), so tether.signer.SE05xSigner's raw R||S output and its public key (from the
certificate in the SE) are checked with `cryptography`, on both interpreters: the JWS form
(64 bytes, R and S zero-padded) and SHA-256 of the message, not of a digest.
"""

import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from mpy import ROOT, micropython_cmd, micropython_env

sys.path.insert(0, str(ROOT))
from tools import fake_se_signer  # noqa: E402
from tools.pki import make_pki  # noqa: E402

pytestmark = pytest.mark.timeout(60)

N = 40  # enough signatures that a short R or S (1 in 128 each) is likely among them

SCRIPT = """
import sys
from tether import creds
from tether.hal import se05x
from tether.hal.fake_se05x import FakeSE05x, RemoteSigner

with open(sys.argv[1], "rb") as f:
    cert = f.read()
fake = FakeSE05x({0x65: cert}, {0x64: RemoteSigner("127.0.0.1", int(sys.argv[2]))})
s = creds.load_signer("se05x:token=0x00000064", se=se05x.SecureElement(fake),
                      cert="se05x:token=0x00000065")
print("ALG", s.algorithm)
print("SPKI", s.public_key_der().hex())
for i in range(int(sys.argv[3])):
    print("SIG", s.sign(b"header.payload-%d" % i).hex())
"""


@pytest.mark.parametrize("interp", ["unix", "cpython"])
def test_se05x_signer_signatures_verify_with_the_certificate_key(interp, tmp_path):
    paths = make_pki(str(tmp_path / "pki"))
    key_der = Path(paths["device_key_der"]).read_bytes()
    server, port = fake_se_signer.start(key_der)
    script = tmp_path / "signer.py"
    script.write_text(SCRIPT)
    args = [paths["device_cert_der"], port, N]
    try:
        if interp == "unix":
            cmd, env = micropython_cmd(script, *args), micropython_env()
        else:
            cmd = [sys.executable, str(script)] + [str(a) for a in args]
            env = {"PYTHONPATH": str(ROOT / "lib")}
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30)
    finally:
        server.shutdown()
        server.server_close()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.split("\n")
    assert "ALG ES256" in lines
    public = x509.load_der_x509_certificate(Path(paths["device_cert_der"]).read_bytes())
    public = public.public_key()
    spki = bytes.fromhex([ln for ln in lines if ln.startswith("SPKI ")][0][5:])
    assert spki == public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    sigs = [bytes.fromhex(ln[4:]) for ln in lines if ln.startswith("SIG ")]
    assert len(sigs) == N and server.signatures == N
    for i, raw in enumerate(sigs):
        assert len(raw) == 64
        r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
        der = utils.encode_dss_signature(r, s)
        public.verify(der, b"header.payload-%d" % i, ec.ECDSA(hashes.SHA256()))
