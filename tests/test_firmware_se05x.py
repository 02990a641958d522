"""The fake SE05x signs with a real P-256 key, on the unix port too, and TLS-side code uses it.

MicroPython's unix port has no EC arithmetic, so the fake's key objects sign through
tools/fake_se_signer.py (a helper on 127.0.0.1 holding the private key). The test drives
tether.creds + tether.hal.se05x exactly as a Portenta build would (its TLS calls
`ecdsa_sign_callback(scalar, digest)`), and verifies each signature with the certificate's
public key. What the fake cannot show: the mbedTLS handshake itself calling the callback
(no port we can run here has ECDSA_SIGN_ALT); see docs/boards.md.
"""

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from mpy import ROOT, micropython_cmd, micropython_env

sys.path.insert(0, str(ROOT))
from tools import fake_se_signer  # noqa: E402
from tools.pki import make_pki  # noqa: E402

pytestmark = pytest.mark.timeout(60)

SCRIPT = """
import sys
from binascii import hexlify, unhexlify
from tether import creds
from tether.hal import se05x
from tether.hal.fake_se05x import FakeSE05x, RemoteSigner

with open(sys.argv[1], "rb") as f:
    cert = f.read()
port = int(sys.argv[2])
digest = unhexlify(sys.argv[3])
fake = FakeSE05x({0x65: cert + b"\\xff" * 64}, {0x64: RemoteSigner("127.0.0.1", port)})
se = se05x.SecureElement(fake)
settings = {"credentials": {"key": "se05x:token=0x00000064", "cert": "se05x:token=0x00000065"}}
creds.port_has_sign_hook = lambda: True  # what a Portenta H7 build reports
kw = creds.load_credentials(settings, se)
print("CERT", len(kw["cert"]), kw["cert"] == cert)
cb = kw["ecdsa_sign_callback"]
print("SIG", hexlify(cb(bytearray(kw["key"][-32:]), bytearray(digest))).decode())
print("OTHER", cb(bytearray(32), bytearray(digest)))
try:
    cb(bytearray(kw["key"][-32:]), bytearray(b"short"))
except ValueError as exc:
    print("BADDIGEST", exc)
fake.keys[0x64] = RemoteSigner("127.0.0.1", int(sys.argv[4]))  # the signer is gone
try:
    cb(bytearray(kw["key"][-32:]), bytearray(digest))
except OSError as exc:
    print("DOWN", type(exc).__name__)
"""


def _dead_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("interp", ["unix", "cpython"])
def test_fake_se05x_signs_tls_digests_with_a_real_p256_key(interp, tmp_path):
    paths = make_pki(str(tmp_path / "pki"))
    cert_der = Path(paths["device_cert_der"]).read_bytes()
    key_der = Path(paths["device_key_der"]).read_bytes()
    server, port = fake_se_signer.start(key_der)
    digest = hashlib.sha256(b"TLS 1.2 CertificateVerify transcript").digest()
    script = tmp_path / "se.py"
    script.write_text(SCRIPT)
    # (a file, not an argument: the unix port aborts on a ~1 KB argv string)
    args = [paths["device_cert_der"], port, digest.hex(), _dead_port()]
    try:
        if interp == "unix":
            cmd = micropython_cmd(script, *args)
            env = micropython_env()
        else:
            cmd = [sys.executable, str(script)] + [str(a) for a in args]
            env = {"PYTHONPATH": str(ROOT / "lib")}
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30)
    finally:
        server.shutdown()
        server.server_close()
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "CERT %d True" % len(cert_der) in out  # its real length, not a slot size
    sig = bytes.fromhex(out.split("SIG ")[1].split()[0])
    public = x509.load_der_x509_certificate(cert_der).public_key()
    public.verify(sig, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))  # raises if wrong
    assert server.signatures == 1
    assert "OTHER None" in out  # any other key: mbedTLS signs in software
    assert "BADDIGEST" in out and "DOWN" in out
