"""`make deploy` of an Astarte device onto the simulated board (tools/simboard).

A board image leaves out the interface JSON parser (tether-astarte-json): `make deploy`
checks the settings' interface JSON files on the host and copies them as the compact *.ifc
form the board reads, with the CA the settings name. Then the deployed firmware pairs,
connects with mutual TLS and declares the interfaces to the emulator's Astarte.
"""

import json
import shutil
import subprocess
import sys

import pytest
from mpy import ROOT
from test_deploy import mpremote, simboard  # noqa: F401

sys.path.insert(0, str(ROOT))
from tools import bundle  # noqa: E402
from tools.cloudsim import CloudSim  # noqa: E402

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.skipif(not shutil.which("socat"), reason="socat missing (.ci/run installs it)"),
]
IFACES = ROOT / "tests" / "ref" / "astarte_interfaces"
DEVICE_ID = "V_zv6ThCCtXWveQ8mPjsKg"


@pytest.fixture
def sim(tmp_path):
    sim = CloudSim(tmp_path / "cloudsim", clouds=["astarte"], dashboard=False).start()
    try:
        sim.clouds["astarte"].add_interfaces_dir(IFACES)
        yield sim
    finally:
        sim.stop()


def _settings(tmp_path, sim, interfaces):
    astarte = sim.clouds["astarte"]
    secret = astarte.register(DEVICE_ID)
    shutil.copy(sim.ca.cert_pem_path, tmp_path / "astarte_ca.pem")  # PEM: no certauth needed
    settings = tmp_path / "settings.json"
    settings.write_text(
        json.dumps(
            {
                "cloud": "astarte",
                "device_id": DEVICE_ID,
                "astarte": {
                    "realm": "test",
                    "pairing_url": astarte.pairing_url,
                    "ca": "astarte_ca.pem",
                    "interfaces": interfaces,
                },
                "fake": {"assoc_ms": 20},
            }
        )
    )
    (tmp_path / "secrets.json").write_text(
        json.dumps({"wifi_ssid": "n", "astarte_credentials_secret": secret})
    )
    return settings


def test_deployed_astarte_firmware_reads_precompiled_interfaces(simboard, sim, tmp_path):  # noqa: F811
    shutil.copytree(IFACES, tmp_path / "ifaces")
    settings = _settings(tmp_path, sim, "ifaces")
    assert not bundle.settings_certauth(settings)
    assert (
        bundle.deploy("esp32", str(simboard.pty), str(settings), None, True, tmp_path / "b") == 0
    )

    flash = simboard.flash
    names = sorted(p.stem for p in IFACES.glob("*.json"))
    assert sorted(p.stem for p in (flash / "ifaces").iterdir()) == names
    assert all(p.suffix == ".ifc" for p in (flash / "ifaces").iterdir())
    assert (flash / "astarte_ca.pem").is_file()
    lib = flash / "lib" / "tether"
    assert (lib / "astarte" / "device.mpy").is_file()
    # the board image's choices: no interface parser, no certificate auth, no realm-key JWT
    for absent in ("astarte/interfaces.mpy", "creds.mpy", "jwt.mpy"):
        assert not (lib / absent).exists(), absent

    # what a reset does on a board: run main.py (for 5 s, then back to the REPL)
    out = mpremote(
        simboard, "exec", "import os; os.putenv('TETHER_RUN_S', '5'); import main", timeout=90
    )
    assert "tether: connected" in out, out
    declared = sim.clouds["astarte"].introspection(DEVICE_ID)
    assert sorted(declared) == names, declared


def test_a_bad_interface_file_stops_the_deploy_naming_it(tmp_path, sim):
    (tmp_path / "ifaces").mkdir()
    good = next(IFACES.glob("*.json"))
    shutil.copy(good, tmp_path / "ifaces" / good.name)
    bad = json.loads(good.read_text())
    bad["mappings"][0]["type"] = "float128"
    (tmp_path / "ifaces" / "broken.json").write_text(json.dumps(bad))
    settings = _settings(tmp_path, sim, "ifaces")
    proc = subprocess.run(
        [sys.executable, "-m", "tools.bundle", "deploy", "esp32", "--port", "/dev/null"]
        + ["--settings", str(settings)],
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "broken.json" in proc.stdout + proc.stderr and "float128" in proc.stdout + proc.stderr


def test_a_missing_interfaces_folder_stops_the_deploy(tmp_path, sim):
    settings = _settings(tmp_path, sim, "nowhere")
    with pytest.raises(SystemExit, match="nowhere"):
        bundle.astarte_interfaces(settings, tmp_path / "stage")


def test_an_se05x_astarte_key_brings_certificate_auth(tmp_path):
    settings = tmp_path / "s.json"
    settings.write_text(json.dumps({"cloud": "astarte", "astarte": {"key": "se05x:token=0x64"}}))
    assert bundle.settings_certauth(settings)
    settings.write_text(json.dumps({"cloud": "astarte", "astarte": {"ca": "ca.pem"}}))
    assert not bundle.settings_certauth(settings)
