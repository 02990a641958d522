"""The emulator from its command line, as a separate process (how a real board or `make
demo` meets it): `provision` registers a device and issues its certificate, `serve` picks it
up while running, and the dashboard's JSON API scripts it."""

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import cbor2
import pytest
from cloudsim_fixtures import MqttProbe, start_cloudsim_process, stop_process

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(60)


def provision(workdir, *args):
    out = subprocess.run(
        [sys.executable, "-m", "tools.cloudsim", "--workdir", str(workdir), "provision"]
        + list(args),
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return json.loads(out.stdout)


class _Ports:
    """Enough of CloudSim for MqttProbe: the ports and the CA of a subprocess emulator."""

    def __init__(self, info):
        self.ports = info["ports"]
        self.ca = type("CA", (), {"cert_pem_path": info["ca_pem"]})


def api(info, path, body=None, content_type="application/json"):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(info["dashboard"].rstrip("/") + path, data=data)
    if data is not None:
        req.add_header("Content-Type", content_type)
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def test_provision_then_serve_then_script_it(tmp_path):
    workdir = tmp_path / "cs"
    first = provision(workdir, "--device", "dev-cli", "--cert")
    assert first["device_id"] == "dev-cli" and first["secret"] and first["thing_id"]
    for key in ("cert_der", "key_der", "ca_der", "cert_pem", "key_pem", "ca_pem"):
        assert Path(first[key]).exists(), key
    again = provision(workdir, "--device", "dev-cli")
    assert again["secret"] == first["secret"] and again["thing_id"] == first["thing_id"]

    proc, info = start_cloudsim_process(workdir)
    try:
        sim = _Ports(info)
        # password and certificate ways in, for the provisioned device
        probe = MqttProbe(sim, "dev-cli", username="dev-cli", password=first["secret"])
        assert probe.connack_code() == 0
        cert = MqttProbe(
            sim, "dev-cli", port_kind="certificate", cert=(first["cert_pem"], first["key_pem"])
        )
        assert cert.connack_code() == 0  # takes the session over
        cert.close()
        probe.close()

        # a device provisioned while the emulator runs is picked up within a second or two
        late = provision(workdir, "--device", "dev-late", "--not-linked")
        assert late["thing_id"] == ""
        deadline = time.monotonic() + 10
        while True:
            probe = MqttProbe(sim, "dev-late", username="dev-late", password=late["secret"])
            code = probe.connack_code()
            if code == 0 or time.monotonic() > deadline:
                break
            probe.close()
            time.sleep(0.3)
        assert code == 0
        probe.subscribe("/a/d/dev-late/e/i")
        assert cbor2.loads(probe.next("/a/d/dev-late/e/i")[1]) == [{0: "thing_id", 3: ""}]
        probe.close()

        # the JSON API: state, writes, knobs; refusals for bad requests
        state = api(info, "/api/state")
        assert {d["id"] for d in state["devices"]} == {"dev-cli", "dev-late"}
        thing = first["thing_id"]
        probe = MqttProbe(sim, "dev-cli", username="dev-cli", password=first["secret"])
        assert probe.connack_code() == 0
        probe.subscribe("/a/t/%s/e/i" % thing, 0)
        api(
            info,
            "/api/write",
            {"thing_id": thing, "name": "loc", "value": {"lat": 1.0, "lon": 2.0}},
        )
        pack = cbor2.loads(probe.next("/a/t/%s/e/i" % thing)[1])
        assert pack == [{0: "loc:lat", 2: 1.0}, {0: "loc:lon", 2: 2.0}]
        probe.close()
        assert api(info, "/api/knobs", {"reply_delay_s": 0.5})["reply_delay_s"] == 0.5
        with pytest.raises(urllib.error.HTTPError) as err:
            api(info, "/api/write", {"thing_id": thing, "name": "x"}, content_type="text/plain")
        assert err.value.code == 415  # no cross-site form posts
        with pytest.raises(urllib.error.HTTPError) as err:
            api(info, "/api/knobs", {"no_such_knob": 1})
        assert err.value.code == 400
        with pytest.raises(urllib.error.HTTPError) as err:
            api(info, "/../pki/ca.key.pem")
        assert err.value.code == 404
        page = urllib.request.urlopen(info["dashboard"], timeout=5).read().decode()
        assert '<script src="app.js"></script>' in page
    finally:
        stop_process(proc)
    assert proc.returncode == 0
    # the registry (and the values) survive the run
    saved = json.loads((workdir / "registry.json").read_text())
    assert {d["id"] for d in saved["devices"]} == {"dev-cli", "dev-late"}
