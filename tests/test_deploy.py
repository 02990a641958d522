"""`make deploy` and `mpremote mip install` against the simulated board (tools/simboard).

The simulated board is the unix port behind a pty (socat); mpremote drives it with
`resume` (no soft reset on the unix port). Its filesystem is a folder, so the tests can
look at what landed there, then run the deployed firmware on it.
"""

import functools
import http.server
import json
import shutil
import subprocess
import sys
import threading

import pytest
from cloudsim_fixtures import cloudsim  # noqa: F401
from mpy import ROOT

sys.path.insert(0, str(ROOT))
from tools import bundle  # noqa: E402
from tools.simboard import SimBoard  # noqa: E402

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(not shutil.which("socat"), reason="socat missing (.ci/run installs it)"),
]
MPREMOTE = str(ROOT / ".venv" / "bin" / "mpremote")


@pytest.fixture
def simboard(tmp_path):
    board = SimBoard(tmp_path / "sim").start()
    try:
        yield board
    finally:
        board.stop()


def mpremote(board, *args, timeout=60):
    proc = subprocess.run(
        [MPREMOTE, "connect", str(board.pty), "resume", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_mpremote_raw_repl_works_through_the_pty(simboard):
    out = mpremote(simboard, "exec", "import sys; print(sys.platform, sys.path)")
    assert "linux ['', '.frozen', 'lib']" in out


def test_make_deploy_copies_bundle_settings_and_app(simboard, tmp_path):
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"device_id": "d", "credentials": {"ca": "ca.der"}}))
    (tmp_path / "secrets.json").write_text(json.dumps({"wifi_ssid": "n", "secret_key": "k"}))
    (tmp_path / "ca.der").write_bytes(b"\x30\x00")
    proc = subprocess.run(
        [
            "make",
            "-s",
            "-o",
            ".venv/.stamp",  # the venv is already built; do not reinstall it here
            "BOARD=Nano",
            "deploy",
            "PORT=%s" % simboard.pty,
            "SETTINGS=%s" % settings,
            "APP=firmware/app.py",
            "RESUME=1",
        ],
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    flash = simboard.flash
    assert "deploying" in proc.stdout and "cp " in proc.stdout  # progress, file by file
    # the settings' cloud (arduino) with the core and the firmware, from the manifests; the
    # simulated board (RESUME=1) also gets the fakes it runs with; never CPython's hsm.py
    for _, rel in bundle.bundle_files(("arduino",), fakes=True):
        if rel.startswith("tether"):
            assert (flash / "lib" / (rel[:-3] + ".mpy")).is_file(), rel
    assert not (flash / "lib" / "tether" / "hsm.mpy").exists()
    assert (flash / "lib" / "tether" / "hal" / "fakes.mpy").is_file()
    for name in ("main.py", "boot.py", "lib/tether_firmware.mpy", "lib/tether_settings.mpy"):
        assert (flash / name).is_file(), name
    for name in ("app.py", "ca.der"):
        assert (flash / name).is_file(), name
    assert json.loads((flash / "settings.json").read_text())["device_id"] == "d"
    assert json.loads((flash / "secrets.json").read_text())["wifi_ssid"] == "n"
    assert json.loads((flash / "tether_board.json").read_text())["name"] == "NANO_RP2040_CONNECT"
    out = mpremote(simboard, "exec", "import tether_firmware, tether; print(tether.__version__)")
    assert out.strip().endswith(json.loads((ROOT / "package.json").read_text())["version"])


def test_deploy_replaces_sources_left_by_mip(simboard, tmp_path):
    stale = simboard.flash / "lib" / "tether"
    stale.mkdir(parents=True)
    (stale / "mqtt.py").write_text("raise ImportError('stale source')\n")
    rc = bundle.deploy("esp32", str(simboard.pty), resume=True, out=tmp_path / "bundle")
    assert rc == 0
    assert not (stale / "mqtt.py").exists() and (stale / "mqtt.mpy").exists()


def test_mip_install_from_a_local_package_json(simboard):
    out = mpremote(simboard, "mip", "install", "--target", "lib", str(ROOT / "package.json"))
    assert "Installing" in out
    listed = [target for target, _ in json.loads((ROOT / "package.json").read_text())["urls"]]
    assert "tether/arduino/client.py" in listed and "tether/hsm.py" not in listed
    for rel in listed:
        assert (simboard.flash / "lib" / rel).stat().st_size > 0, rel
    assert not (simboard.flash / "lib" / "tether" / "hsm.py").exists()
    out = mpremote(simboard, "exec", "import tether.hal.network as n; print(n.default_kind())")
    assert out.strip() == "fake"


def test_mip_install_over_http_from_127_0_0_1(simboard, tmp_path):
    # The layout `mip install github:OWNER/REPO` sees, served from 127.0.0.1: package.json at
    # the top, relative urls beside it. Two modules keep it quick; the full list is above.
    data = json.loads((ROOT / "package.json").read_text())
    data["urls"] = [u for u in data["urls"] if u[0] in ("tether/__init__.py", "tether/log.py")]
    site = tmp_path / "site"
    for _, url in data["urls"]:
        (site / url).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / url, site / url)
    (site / "package.json").write_text(json.dumps(data))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        url = "http://127.0.0.1:%d/package.json" % server.server_address[1]
        mpremote(simboard, "mip", "install", "--target", "lib", url, timeout=120)
    finally:
        server.shutdown()
        server.server_close()
    for name in ("__init__.py", "log.py"):
        got = (simboard.flash / "lib" / "tether" / name).read_bytes()
        assert got == (site / "lib" / "tether" / name).read_bytes()


def test_deployed_firmware_runs_on_the_simulated_board(simboard, cloudsim, tmp_path):  # noqa: F811
    device, thing, secret = (
        "e6a1f9b0-0000-4000-8000-0000000de910",
        "11111111-2222-4333-8444-5555555de910",
        "k3y",
    )
    cloudsim.add_device(device, secret=secret, thing_id=thing)
    shutil.copy(cloudsim.ca.cert_der_path, tmp_path / "ca.der")
    settings = tmp_path / "settings.json"
    settings.write_text(
        json.dumps(
            {
                "device_id": device,
                "server": "127.0.0.1",
                "port": cloudsim.ports["password"],
                "credentials": {"ca": "ca.der"},
                "fake": {"assoc_ms": 20},
            }
        )
    )
    (tmp_path / "secrets.json").write_text(json.dumps({"wifi_ssid": "n", "secret_key": secret}))
    assert (
        bundle.deploy(
            "esp32",
            str(simboard.pty),
            str(settings),
            str(ROOT / "firmware" / "app.py"),
            True,
            tmp_path / "b",
        )
        == 0
    )
    # password auth: the bundle has no certificate code (tether-certauth), only its stand-in
    assert not (simboard.flash / "lib" / "tether" / "creds.mpy").exists()
    assert not (simboard.flash / "lib" / "tether" / "der.mpy").exists()
    assert (simboard.flash / "lib" / "tether" / "nocert.mpy").is_file()
    # what a reset does on a board: run main.py (here for 3 s, then back to the REPL)
    out = mpremote(
        simboard,
        "exec",
        "import os; os.putenv('TETHER_RUN_S', '3'); import main",
        timeout=60,
    )
    assert "tether: connected" in out, out
    cloudsim.wait_for_value(thing, "uptime", 0, timeout=5)


def test_deploy_brings_certificate_auth_when_the_settings_use_it(tmp_path, monkeypatch):
    # A key or certificate, a PEM CA or the fake SE05x need tether-certauth; a DER CA and a
    # password do not (the board's default then decides: the Portenta has it).
    def settings(name, data):
        path = tmp_path / name
        path.write_text(json.dumps(data))
        return path

    (tmp_path / "ca.der").write_bytes(b"\x30\x00")
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    plain = settings("plain.json", {"credentials": {"ca": "ca.der"}})
    assert bundle.settings_certauth(plain) is False
    assert bundle.settings_certauth(settings("none.json", {})) is False
    for data in (
        {"credentials": {"key": "key.der", "cert": "cert.der"}},
        {"credentials": {"key": "se05x:token=0x64", "cert": "se05x:token=0x65"}},
        {"credentials": {"ca": ["ca.der", "ca.pem"]}},
        {"fake": {"se05x": {}}},
    ):
        assert bundle.settings_certauth(settings("s.json", data)) is True, data
    seen = []

    def fake_build(board, out, clouds=None, fakes=False, certauth=None):
        seen.append(certauth)
        (tmp_path / "empty").mkdir(exist_ok=True)
        return tmp_path / "empty", {}

    monkeypatch.setattr(bundle, "build", fake_build)
    monkeypatch.setattr(bundle, "deploy_command", lambda *a, **k: [sys.executable, "-c", ""])
    bundle.deploy("esp32", "/dev/null", str(settings("s.json", {"fake": {"se05x": {}}})))
    bundle.deploy("esp32", "/dev/null", str(plain))
    bundle.deploy("esp32", "/dev/null", str(plain), certauth=True)
    assert seen == [True, None, True]  # None: the board's manifest decides
