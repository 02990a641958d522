"""tether.sap.SAPIoTClient against the SAP emulator plug-in (tools/cloudsim/plugins/sap) over
mutual TLS on 127.0.0.1, on CPython and on the MicroPython unix port.

Each test runs tests/sap_device.py (or examples/sap_measures.py) as a process on both
interpreters, with credentials made the way a user makes them: the emulator issues SAP's
bundle (encrypted PKCS#8 key + certificate, and its secret), tools/sap_cert.py converts it.
"""

import datetime
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cloudsim_fixtures import cloudsim_factory  # noqa: F401
from mpy import micropython_cmd, micropython_env

from tools import sap_cert
from tools.faultproxy import ProxyThread

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parent.parent
DEVICE = ROOT / "tests" / "sap_device.py"
EXAMPLE = ROOT / "examples" / "sap_measures.py"
ALT = "dev-1"
INTERPRETERS = ["cpython", "micropython"]


@pytest.fixture
def sap(cloudsim_factory, tmp_path):  # noqa: F811
    sim = cloudsim_factory(clouds=["sap"], dashboard=False)
    cloud = sim.clouds["sap"]
    cloud.add_capability("env", [("temperature", "float"), ("unit", "string")])
    cloud.add_capability("switch", [("LED", "boolean"), ("Speed", "double")])
    cloud.add_device(ALT, sensors={"s1": {"measures": ["env"], "commands": ["switch"]}})
    return sim


def credentials(sim, tmp_path, alt=ALT, **issue):
    """cert.der / key.der (and the PEMs) from a bundle the emulator issued, as a user would."""
    bundle = sim.clouds["sap"].issue_certificate(alt, **issue)
    out = tmp_path / ("creds-%s-%d" % (alt, len(list(tmp_path.glob("creds-*")))))
    return sap_cert.write(sap_cert.convert(bundle["pem"], bundle["secret"]), str(out))


def command_line(interp, script, *args):
    if interp == "micropython":
        return micropython_cmd(script, *args), micropython_env(ROOT / "tests")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "lib"), str(ROOT / "tests")]))
    return [sys.executable, str(script)] + [str(a) for a in args], env


class Device:
    """A device process; its JSON lines arrive on a queue."""

    def __init__(self, interp, script, *args):
        cmd, env = command_line(interp, script, *args)
        self.proc = subprocess.Popen(
            cmd, cwd=str(ROOT), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        self.lines = queue.Queue()
        self.text = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.text.append(line)
            line = line.strip()
            if line.startswith("{"):
                try:
                    self.lines.put(json.loads(line))
                except ValueError:
                    pass
        self.lines.put(None)

    def next(self, key=None, timeout=20):
        """The next JSON line (with `key`, skipping others)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                item = self.lines.get(timeout=max(left, 0.01))
            except queue.Empty:
                item = None
            if item is None:
                raise AssertionError(
                    "no %s line within %s s; output:\n%s" % (key, timeout, "".join(self.text))
                )
            if key is None or key in item:
                return item

    def finish(self, timeout=20):
        try:
            self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(5)
        return "".join(self.text)


def run_device(interp, sim, creds, mode, **cfg):
    # The config goes in a file: the unix port dies on an argument of 256+ characters.
    c = {
        "mode": mode,
        "alt": ALT,
        "port": sim.ports["sap"],
        "cert": creds["cert.der"],
        "key": creds["key.der"],
        "ca": str(sim.ca.cert_der_path),
    }
    c.update(cfg)
    path = Path(creds["cert.der"]).parent / ("%s-%s.json" % (mode, c["alt"]))
    path.write_text(json.dumps(c))
    return Device(interp, DEVICE, path)


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_measures_in_both_forms_and_every_kind_of_ack(interp, sap, tmp_path):
    creds = credentials(sap, tmp_path)
    cloud = sap.clouds["sap"]
    sap.set_knobs(sap_drop_acks=1)  # the first measure's ack never comes
    dev = run_device(interp, sap, creds, "acks", ack_timeout_ms=1500)
    dev.next("ready")
    assert dev.next("r")["r"] == {"unconfirmed": "no ack within 1500 ms"}
    assert dev.next("r")["r"] == {"code": 202}  # two samples, in property order
    assert dev.next("r")["r"] == {"code": 202}  # by property name
    bad = dev.next("r")["r"]
    assert bad["refused"] == 400 and "temperature" in bad["message"], bad
    last = dev.next("r")
    assert last == {"r": {"code": 202}, "latency": True}
    stats = dev.next("stats")
    dev.finish()
    assert stats["up"] is True
    s = stats["stats"]
    assert (s["acked"], s["refused"], s["unconfirmed"], s["measures_sent"]) == (3, 1, 1, 5), s
    assert s["bad_messages"] == 0 and s["orphan_acks"] == 0, s
    got = cloud.measures(ALT)
    assert [m["samples"] for m in got[:3]] == [
        [{"temperature": 20.0, "unit": "C"}],
        [{"temperature": 21.5, "unit": "C"}, {"temperature": 22.0, "unit": "C"}],
        [{"temperature": 23.25}],
    ]
    assert got[3]["code"] == 400
    assert got[4]["samples"] == [{"unit": "K"}] and got[4]["timestamp"] == 1700000000000
    assert [a["sent"] for a in cloud.acks(ALT)] == [False, True, True, True, True]


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_commands_arrive_and_a_malformed_corpus_leaves_the_client_connected(interp, sap, tmp_path):
    creds = credentials(sap, tmp_path)
    cloud = sap.clouds["sap"]
    dev = run_device(interp, sap, creds, "commands", count=2)
    dev.next("ready")
    cloud.send_command(ALT, "switch", "s1", {"LED": True, "Speed": 50.0})
    assert dev.next("command")["command"] == ["switch", "s1", {"LED": True, "Speed": 50.0}]
    corpus = [
        b"",
        b"{",
        b"null",
        b"[1, 2]",
        b'"text"',
        b"\xff\xfe\x00",
        b'{"capabilityAlternateId": 7, "sensorAlternateId": "s1", "command": {}}',
        b'{"capabilityAlternateId": "switch", "sensorAlternateId": "s1", "command": [1]}',
        b'{"capabilityAlternateId": "switch", "command": {"LED": true}}',
        b"{" * 300,
    ]
    acks = [
        b"",
        b"{}",
        b'{"capabilityAlternateId": "env", "sensorAlternateId": "s1"}',
        b'{"capabilityAlternateId": "env", "sensorAlternateId": "s1", "code": "x"}',
        b'{"capabilityAlternateId": "env", "sensorAlternateId": "s1", "code": true}',
        b"[202]",
    ]
    for body in corpus:
        sap.call(sap.publish, "commands/" + ALT, body, 1)
    for body in acks:
        sap.call(sap.publish, "ack/" + ALT, body, 1)
    # An ack for no measure waiting is well formed: counted as an orphan, not as bad.
    orphan = {"capabilityAlternateId": "env", "sensorAlternateId": "s1", "code": 202}
    sap.call(sap.publish, "ack/" + ALT, json.dumps(orphan).encode(), 1)
    cloud.send_command(ALT, "switch", "s1", {"LED": False, "Speed": 0.5})
    assert dev.next("command")["command"] == ["switch", "s1", {"LED": False, "Speed": 0.5}]
    stats = dev.next("stats")
    dev.finish()
    s = stats["stats"]
    assert stats["up"] is True and s["reconnects"] == 0, s
    assert s["bad_messages"] == len(corpus) + len(acks), s
    assert s["commands"] == 2 and s["orphan_acks"] == 1, s
    if interp == "micropython":
        # What only building the TLS context, a failure or a store needs is not kept: those
        # modules were dropped (build_once) or never loaded.
        lazy = ["tether.creds", "tether.der", "tether.sap.errors", "tether.sap.refusal",
                "tether.sap.stored", "tether.tlsctx", "tether.cloud.outbox"]  # fmt: skip
        assert [m for m in lazy if m in stats["mods"]] == [], stats["mods"]


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_measures_made_during_an_outage_are_delivered_and_acked_after_it(interp, sap, tmp_path):
    creds = credentials(sap, tmp_path)
    proxy = ProxyThread("127.0.0.1", sap.ports["sap"])
    port = proxy.start()
    try:
        dev = run_device(interp, sap, creds, "outage", port=port)
        dev.next("ready")
        for _ in range(3):
            assert dev.next("r")["r"] == {"code": 202}
        dev.next("cut")
        proxy.refuse()
        proxy.drop()
        assert dev.next("queued")["queued"] == ["queued"] * 5
        time.sleep(1.5)  # the device retries against a refusing port meanwhile
        proxy.resume()
        for _ in range(5):
            assert dev.next("r")["r"] == {"code": 202}
        stats = dev.next("stats")
        dev.finish()
    finally:
        proxy.stop()
    s = stats["stats"]
    assert s["reconnects"] >= 1 and s["connect_failures"] >= 1, s
    assert s["acked"] == 8 and s["unconfirmed"] == 0 and s["dropped"] == 0, s
    temps = [m["samples"][0]["temperature"] for m in sap.clouds["sap"].measures(ALT)]
    assert temps == [0.0, 1.0, 2.0, 100.0, 101.0, 102.0, 103.0, 104.0]  # each once, in order


def _other_ca_cert(sim, tmp_path):
    d = Path(sim.ca.dir)
    return {"cert.der": str(d / "client_unknown_ca.crt.der"),
            "key.der": str(d / "client_unknown_ca.key.der")}  # fmt: skip


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_refusals_are_explained(interp, sap, tmp_path):
    cloud = sap.clouds["sap"]
    cloud.add_device("dev-2", sensors={"s1": ["env"]})
    good = credentials(sap, tmp_path)
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=2)
    expired = credentials(sap, tmp_path, not_after=past)
    cases = [
        ("wrong client id", good, {"alt": "dev-2"}),
        ("other CA", _other_ca_cert(sap, tmp_path), {}),
        ("expired", expired, {}),
    ]
    errors = {}
    for name, creds, cfg in cases:
        dev = run_device(interp, sap, creds, "connect", timeout_ms=8000, **cfg)
        line = dev.next("error", timeout=30)
        dev.finish()
        errors[name] = line
    e = errors["wrong client id"]
    assert e["code"] == 2 and e["permanent"], e
    assert "identifier rejected" in e["error"] and "alternate id" in e["error"], e
    e = errors["other CA"]
    assert e["code"] is None and e["permanent"] and e["error"].startswith("TLS:"), e
    assert "certificate" in e["error"], e
    e = errors["expired"]
    assert e["permanent"] and "expired" in e["error"] and "sap_cert" in e["error"], e


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_an_unregistered_certificate_is_not_authorized(interp, sap, tmp_path):
    creds = credentials(sap, tmp_path)
    # The device's certificate is replaced: the old one no longer maps to it (CONNACK 5).
    cloud = sap.clouds["sap"]
    with sap.registry.lock:
        cloud._by_fingerprint.clear()
        cloud.device(ALT).fingerprints.clear()
    dev = run_device(interp, sap, creds, "connect", timeout_ms=8000)
    e = dev.next("error", timeout=30)
    dev.finish()
    assert e["code"] == 5 and e["permanent"] and "revoked or replaced" in e["error"], e


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_the_example_sends_10_measures_and_reports_their_acks(interp, sap, tmp_path):
    creds = credentials(sap, tmp_path)
    dev = Device(
        interp, EXAMPLE, "--host", "127.0.0.1", "--port", sap.ports["sap"],
        "--server-hostname", "localhost", "--device", ALT, "--capability", "env",
        "--sensor", "s1", "--cert", creds["cert.der"], "--key", creds["key.der"],
        "--ca", sap.ca.cert_der_path, "--property", "temperature",
    )  # fmt: skip
    text = dev.finish(60)
    assert dev.proc.returncode == 0, text
    lines = [ln for ln in text.splitlines() if ln.startswith("measure ")]
    assert len(lines) == 10, text
    for ln in lines:
        assert " ack 202 " in ln and ln.rstrip().endswith("ms"), ln
    assert "10 acked, 0 refused, 0 unconfirmed" in text, text
    assert len(sap.clouds["sap"].measures(ALT)) == 10


HSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"


def test_cpython_device_key_in_a_pkcs11_token(sap, tmp_path, monkeypatch):
    # The key SAP issued, imported into a SoftHSM2 token (it cannot be read back from
    # there): key="pkcs11:...", the certificate from the file, a measure acked 202.
    if not os.path.exists(HSM_MODULE):
        pytest.fail("SoftHSM2 is not installed (apt-get install softhsm2; .ci/run does)")
    creds = credentials(sap, tmp_path)
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text("directories.tokendir = %s\nobjectstore.backend = file\n" % tokens)
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    pk8 = tmp_path / "key.pk8.pem"
    steps = [
        ["openssl", "pkey", "-in", creds["key.pem"], "-out", str(pk8)],
        ["softhsm2-util", "--init-token", "--free", "--label", "sap", "--pin", "1234",
         "--so-pin", "5678"],
        ["softhsm2-util", "--import", str(pk8), "--token", "sap", "--label", "device",
         "--id", "01", "--pin", "1234"],
    ]  # fmt: skip
    for cmd in steps:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, "%s: %s%s" % (cmd[0], p.stdout, p.stderr)
    pk8.unlink()
    uri = "pkcs11:token=sap;object=device;type=private?pin-value=1234"
    dev = run_device("cpython", sap, creds, "measure", key=uri)
    dev.next("ready", timeout=30)
    assert dev.next("r")["r"] == {"code": 202}
    stats = dev.next("stats")
    out = dev.finish()
    assert stats["stats"]["acked"] == 1 and "1234" not in out, out
    assert sap.clouds["sap"].measures(ALT)[0]["samples"] == [{"temperature": 20.5, "unit": "C"}]


def test_firmware_on_the_unix_port_with_sap_settings(sap, tmp_path):
    # `"cloud": "sap"`, the certificate and key in the board's flash (DER files), the store
    # on (the firmware's default: measures go through tether.sap.stored), an app sending
    # measures from loop() and waiting for each ack.
    import shutil

    creds = credentials(sap, tmp_path)
    dev = tmp_path / "board"
    dev.mkdir()
    shutil.copy(creds["cert.der"], dev / "cert.der")
    shutil.copy(creds["key.der"], dev / "key.der")
    shutil.copy(sap.ca.cert_der_path, dev / "ca.der")
    (dev / "app.py").write_text(
        "async def loop(client):\n"
        "    for i in range(3):\n"
        "        code = await client.send_measures('env', [[20 + i, 'C']], 's1')\n"
        "        print('ACK', i, code)\n"
        "    print('ACKED', client.counters['acked'], client.outbox is not None)\n"
    )
    settings = {
        "cloud": "sap",
        "device_id": ALT,
        "wifi": {"driver": "none"},
        "watchdog_ms": 0,
        "credentials": {"key": "key.der", "cert": "cert.der", "ca": "ca.der"},
        "server": "127.0.0.1",
        "port": sap.ports["sap"],
        "server_hostname": "localhost",
    }
    (dev / "settings.json").write_text(json.dumps(settings))
    env = micropython_env()
    env["TETHER_RUN_S"] = "4"
    out = subprocess.run(
        micropython_cmd(ROOT / "firmware" / "main.py", dev / "settings.json"),
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    text = out.stdout[-3000:] + out.stderr[-2000:]
    assert out.returncode == 0, text
    assert "tether: connected" in out.stdout, text
    assert "ACKED 3 True" in out.stdout, text
    got = sap.clouds["sap"].measures(ALT)
    assert [m["samples"] for m in got] == [[{"temperature": 20.0 + i, "unit": "C"}] for i in
                                           range(3)]  # fmt: skip
    assert (dev / "store").exists()
