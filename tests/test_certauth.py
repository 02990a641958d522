"""Images without certificate authentication (tether-certauth): what works, what refuses.

An image for password (Arduino) or SAS (Azure) auth leaves tether.creds, certs, der, signer
and hal.se05x out (tools/components.py, manifest.py `certauth=False`). These tests copy
exactly the files such an image carries into a folder and run a script there, on the
MicroPython unix port and on CPython: basic auth and DER CA files work, and every use of a
key, a certificate, a PEM file or the SE05x raises CredentialError naming tether-certauth.
"""

import shutil
import subprocess
import sys

import pytest
from mpy import ROOT, micropython_binary

sys.path.insert(0, str(ROOT))
from tools import components  # noqa: E402
from tools.pki import make_pki  # noqa: E402

# tether.der is its own block (tether-der), which certauth requires: a password image has
# neither; an Astarte image has tether.der (its key and CSR) and not the others
# (tests/test_astarte_image.py).
CERTAUTH = ("tether/creds.py", "tether/certs.py", "tether/der.py", "tether/signer.py")

# Runs in the image folder, with `D` (a folder holding ca.der, ca.pem, key.der, cert.der).
SCRIPT = r"""
import sys
from tether.errors import CredentialError

D = sys.argv[1] if len(sys.argv) > 1 else None


def refused(fn, *args, **kw):
    try:
        fn(*args, **kw)
    except CredentialError as exc:
        text = str(exc)
        assert "add the tether-certauth component" in text, text
        return text
    raise AssertionError("no CredentialError from %r" % (fn,))


for name in ("tether.creds", "tether.certs", "tether.der", "tether.signer", "tether.hal.se05x"):
    try:
        __import__(name)
    except ImportError:
        continue
    raise AssertionError(name + " is in this image")

with open(D + "/ca.der", "rb") as f:
    CA = f.read()
with open(D + "/ca.pem", "rb") as f:
    PEM = f.read()
with open(D + "/key.der", "rb") as f:
    KEY = f.read()
with open(D + "/cert.der", "rb") as f:
    CERT = f.read()

from tether.arduino import profile

# basic auth: built-in roots, or a DER CA file (the emulator's), one or a list
c = profile.make_client({"device_id": "d", "_secrets": {"secret_key": "k"}, "_dir": D})
assert c is not None
p = profile.ssl_params({"device_id": "d", "credentials": {"ca": "ca.der"}, "_dir": D})
assert p == {"cadata": CA}, p
p = profile.ssl_params({"credentials": {"ca": ["ca.der", D + "/ca.der"]}, "_dir": D})
assert p == {"cadata": [CA, CA]}, p
print("basic auth ok")

# certificate auth in the settings: refused before any connection, naming the component
s = {"device_id": "d", "credentials": {"key": "key.der", "cert": "cert.der"}, "_dir": D}
print(refused(profile.make_client, s))
s["credentials"] = {"key": "se05x:token=0x00000064", "cert": "se05x:token=0x00000065"}
refused(profile.make_client, s)
print(refused(profile.ssl_params, {"credentials": {"ca": "ca.pem"}, "_dir": D}))
refused(profile.ssl_params, {"credentials": {"ca": PEM.decode()}, "_dir": D})
try:
    profile.ssl_params({"credentials": {"ca": "nothere.der"}, "_dir": D})
    raise AssertionError("missing CA file accepted")
except CredentialError as exc:
    assert "nothere.der cannot be read" in str(exc), exc
try:
    profile.ssl_params({"credentials": {"ca": "key.pem"}, "_dir": D})
except CredentialError as exc:
    assert "tether-certauth" in str(exc), exc  # PEM armour: says what to add

# the client's ssl_params (arduino-iot-cloud-py's names)
from tether.arduino.ssl_params import context_from_ssl_params

refused(context_from_ssl_params, {"keyfile": KEY, "certfile": CERT, "cadata": CA}, 8883)
refused(context_from_ssl_params, {"keyfile": "se05x:token=0x64", "certfile": CERT}, 8884)
refused(context_from_ssl_params, {"cadata": PEM}, 8883)
ctx = context_from_ssl_params({"insecure": True, "cadata": CA}, 8883)
assert ctx is not None
print("ssl_params ok")

# the lower layer: PEM and client certificates need tether.certs
from tether import tlsctx

refused(tlsctx.client_context, cadata=PEM)
refused(tlsctx.client_context, cadata=CA, cert=CERT, key=KEY)
assert tlsctx.client_context(cadata=CA) is not None
try:
    tlsctx.is_pem(PEM)
    raise AssertionError("tlsctx.is_pem without tether.certs")
except CredentialError as exc:
    assert "add the tether-certauth component" in str(exc), exc

# Azure: SAS with DER roots works; X.509 and a PEM CA are refused
try:
    from tether.azure import common
except ImportError:
    common = None
if common is not None:
    from tether.azure.models import X509

    assert common.tls_context(CA, None) is not None
    refused(common.tls_context, CA, X509(D + "/cert.der", D + "/key.der"))
    if sys.implementation.name == "micropython":  # CPython: OpenSSL reads a PEM CA itself
        refused(common.tls_context, PEM, None)
    print("azure ok")

# the firmware reports it at prepare(), before the watchdog is armed
import tether_firmware

s = {
    "cloud": "arduino",
    "device_id": "d",
    "wifi": {"driver": "none"},
    "_secrets": {},
    "_dir": D,
    "credentials": {"key": "key.der", "cert": "cert.der", "ca": "ca.der"},
}
print(refused(tether_firmware.Firmware(s).prepare))
print("done")
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    paths = make_pki(str(d / "all"))
    for name, key in (
        ("ca.der", "ca_cert_der"),
        ("ca.pem", "ca_cert_pem"),
        ("key.der", "device_0_key_der"),
        ("key.pem", "device_0_key_pem"),
        ("cert.der", "device_0_cert_der"),
    ):
        shutil.copy(paths[key], d / name)
    return d


def image_dir(dest, clouds, certauth=False):
    """The library and firmware modules of an image, as source, in dest/ (what it imports)."""
    for src, target in components.image(clouds, True, False, certauth):
        (dest / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dest / target)
    return dest


@pytest.fixture(scope="module")
def password_image(tmp_path_factory):
    return image_dir(tmp_path_factory.mktemp("img"), ("arduino", "azure"))


def _run(cmd, env, cwd):
    proc = subprocess.run(cmd, env=env, cwd=str(cwd), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.rstrip().endswith("done"), (
        proc.stdout + proc.stderr
    )
    return proc.stdout


def _check(out):
    assert "basic auth ok" in out and "ssl_params ok" in out and "azure ok" in out
    # each refusal says what was asked for and what to add
    assert "credentials key/cert: certificate authentication is not in this image" in out
    assert "PEM CA certificate file" in out and "openssl x509 -outform DER" in out


def test_the_password_image_lacks_certauth_and_names_it(password_image):
    targets = {t for _, t in components.image(("arduino", "azure"))}
    assert not set(CERTAUTH) & targets and "tether/hal/se05x.py" not in targets
    assert "tether/nocert.py" in targets
    with_it = {t for _, t in components.image(("arduino",), certauth=True)}
    assert set(CERTAUTH) <= with_it and "tether/nocert.py" not in with_it
    for cloud in ("akenza", "sap"):  # they need it whatever the option says
        assert set(CERTAUTH) <= {t for _, t in components.image((cloud,))}, cloud
    assert not (password_image / "tether" / "creds.py").exists()


def test_without_certauth_on_micropython(password_image, pki, tmp_path):
    script = tmp_path / "check.py"
    script.write_text(SCRIPT)
    env = {"MICROPYPATH": ".frozen:%s" % password_image, "PATH": "/usr/bin:/bin"}
    _check(_run([micropython_binary(), str(script), str(pki)], env, tmp_path))


def test_without_certauth_on_cpython(password_image, pki, tmp_path):
    script = tmp_path / "check.py"
    script.write_text(SCRIPT)
    # On CPython the image's files come with the CPython-only modules (components.HOST_ONLY:
    # tlsctx builds CPython's contexts in tether.tlshost), as a pip install has them.
    img = shutil.copytree(password_image, tmp_path / "img")
    for target in components.HOST_ONLY:
        shutil.copy(ROOT / "lib" / target, img / target)
    # -S: no site-packages, so the editable install of lib/ cannot fill the gap
    env = {"PYTHONPATH": str(img), "PATH": "/usr/bin:/bin"}
    _check(_run([sys.executable, "-S", str(script), str(pki)], env, tmp_path))


def test_the_same_script_passes_nothing_with_certauth(pki, tmp_path):
    # With the component the same settings load: the refusals above come from its absence.
    img = image_dir(tmp_path / "img", ("arduino",), certauth=True)
    script = tmp_path / "with.py"
    script.write_text(
        "import sys\nfrom tether.arduino import profile\n"
        "s = {'credentials': {'key': 'key.der', 'cert': 'cert.der', 'ca': 'ca.pem'},"
        " '_dir': sys.argv[1]}\n"
        "p = profile.ssl_params(s)\n"
        "assert p['certfile'][:1] == b'\\x30' and p['cadata'][:1] == b'\\x30', p\n"
        "print('done')\n"
    )
    env = {"MICROPYPATH": ".frozen:%s" % img, "PATH": "/usr/bin:/bin"}
    _run([micropython_binary(), str(script), str(pki)], env, tmp_path)


def test_nocert_imports_only_downward():
    # tlsctx raises its own message instead of importing tether.nocert: no cycle
    from test_tls_imports import _reach, graph

    arrows = graph()
    assert arrows["tether.nocert"] <= {"tether.errors", "tether.tlsctx"}
    assert "tether.nocert" not in _reach(arrows, "tether.nocert")
    assert "tether.nocert" not in _reach(arrows, "tether.tlsctx")
