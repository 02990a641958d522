"""Fidelity (issue 12 item 4): a real client runs the whole Azure flow against the emulator.

The official azure-iot-device 2.14 (its own venv, tests/refvenv.py) runs tests/ref/azure_flow.py:
DPS register, hub connect, 3 telemetry messages with properties, get_twin + a reported patch,
one desired patch, one direct method, one C2D with properties, each step printed as a JSON
line. The emulator is only trusted because the SDK accepts it: each step asserts what the
emulator saw and what the client printed.

`azure_flow(sim, cmd, case, workdir)` takes "which client" as a command line (the config JSON
is appended as the last argument), so Tether's own Azure client runs the very same flow with
a script that prints the same lines.
"""

import json
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
from azure_emu import start_sim
from refvenv import ref_python

ROOT = Path(__file__).resolve().parent.parent
FLOW = ROOT / "tests" / "ref" / "azure_flow.py"
HUB_TOPICS = {
    "$iothub/twin/res/#",
    "$iothub/twin/PATCH/properties/desired/#",
    "$iothub/methods/POST/#",
}

pytestmark = pytest.mark.timeout(90)


class FlowProcess:
    """A client under test: prints one JSON line per step on stdout."""

    def __init__(self, cmd, config, log_path):
        self._log = open(log_path, "w")
        self.log_path = log_path
        self.proc = subprocess.Popen(
            list(cmd) + [json.dumps(config)],
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            cwd=str(ROOT),
        )
        self.lines = []
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                obj = json.loads(line)
            except ValueError:
                obj = {"step": "garbage", "line": line}
            with self._cond:
                self.lines.append(obj)
                self._cond.notify_all()
        with self._cond:
            self.lines.append({"step": "eof"})
            self._cond.notify_all()

    def wait(self, step, timeout=20):
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for obj in self.lines:
                    if obj["step"] == step:
                        return obj
                    if obj["step"] == "eof":
                        raise AssertionError("client ended before %r:\n%s" % (step, self.stderr()))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no %r from the client:\n%s" % (step, self.stderr()))
                self._cond.wait(left)

    def stderr(self):
        self._log.flush()
        return Path(self.log_path).read_text()[-3000:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._log.close()


def enroll(azure, sim, case):
    """Enroll one device for `case`; -> the client's config (without hosts)."""
    reg = "%s-%s" % (case, uuid.uuid4().hex[:8])
    cfg = {"auth": "sas", "registration_id": reg}
    if case == "sas":
        cfg["key"] = azure.add_enrollment(reg, initial_twin={"rate": 1}).key
    elif case == "group":
        group = azure.add_group_enrollment("fleet")
        cfg["group_key"] = group.key  # a client that derives the key itself uses this
        cfg["key"] = azure.derived_key(group.key, reg)
        azure.set_knobs(azure_dps_errors=[429])  # throttled once: the register is re-sent
    elif case in ("x509", "x509-group"):
        if case == "x509":
            azure.add_enrollment(reg, x509="ca", initial_twin={"rate": 1})
        else:  # the seed's case: an enrollment group trusting a CA, CN = registration id
            azure.add_group_enrollment("fleet-ca", x509_ca="test-ca")
        files = sim.device_files(reg)
        cfg.update(auth="x509", cert_file=str(files["cert_pem"]), key_file=str(files["key_pem"]))
        cfg.update(cert_der=str(files["cert_der"]), key_der=str(files["key_der"]))
    return cfg


def azure_flow(sim, azure, cmd, case, workdir):
    """Run the whole flow with the client `cmd` for `case` ("sas", "group", "x509",
    "x509-group"); assert
    both sides at each step. -> the lines the client printed."""
    cfg = enroll(azure, sim, case)
    reg = cfg["registration_id"]
    cfg.update(
        dps_host=azure.dps_host,
        id_scope=azure.id_scope,
        ca_file=str(sim.ca.cert_pem_path),
        ca_der=str(sim.ca.cert_der_path),
        timeout_s=40,
    )
    client = FlowProcess(cmd, cfg, Path(workdir) / ("client-%s.log" % case))
    try:
        # 1. DPS
        got = client.wait("dps", timeout=25)
        assert got["status"] == "assigned" and got["substatus"] == "initialAssignment"
        assert got["hub"] == azure.assigned_hub and got["device_id"] == reg
        record = azure.registration(reg)
        assert record["status"] == "assigned" and record["polls"] == 1
        assert record["payload"] == {"modelId": "dtmi:tether:test;1"}
        assert record["group"] == {"group": "fleet", "x509-group": "fleet-ca"}.get(case)
        throttled = [e for e in sim.events(reg, "dps-error") if e["text"] == "429 (knob)"]
        assert len(throttled) == (1 if case == "group" else 0)

        # 2. hub connect, with the credential DPS assigned
        client.wait("connected")
        dev = sim.wait_connected(reg, cloud="azure")
        assert dev.auth == ("x509-ca" if case.startswith("x509") else "sas")

        # 3. telemetry: bodies and property bags
        client.wait("telemetry")
        sent = azure.wait_telemetry(reg, 3)
        assert [json.loads(m["body"]) for m in sent] == [
            {"n": i, "temp": 20.5 + i} for i in range(3)
        ]
        for i, m in enumerate(sent):
            assert m["properties"] == {
                "$.mid": "m%d" % i,
                "$.ct": "application/json",
                "$.ce": "utf-8",
                "seq": str(i),
                "alert": "hi & lo",
            }
            assert m["qos"] == 1

        # 4. twin: GET, reported patch (null deletes), versions
        twin = client.wait("twin")
        desired_v = 1 if "group" in case else 2  # an initial twin is a first desired patch
        assert twin == {"step": "twin", "desired_version": desired_v, "reported_version": 1}
        rep = client.wait("reported")
        assert rep["reported_version"] == 2
        assert rep["reported"] == {"fw": "1.0.0", "temp": 21.5}
        assert azure.twin(reg)["reported"] == {"fw": "1.0.0", "temp": 21.5, "$version": 2}

        # 5. handlers set: the SDK subscribes lazily; wait until the hub sees it listen
        client.wait("ready")
        wanted = HUB_TOPICS | {"devices/%s/messages/devicebound/#" % reg}
        sim.registry.wait(lambda: wanted <= dev.subscriptions, 10)

        version = azure.set_desired(reg, {"rate": 5, "mode": {"eco": True}})
        got = client.wait("desired")
        assert got["patch"] == {"rate": 5, "mode": {"eco": True}, "$version": version}

        status, payload = azure.invoke_method(reg, "blink", {"times": 2}, timeout_s=10)
        assert (status, payload) == (200, {"result": "ok", "echo": {"times": 2}})
        got = client.wait("method")
        assert got["name"] == "blink" and got["payload"] == {"times": 2}

        mid = azure.send_c2d(reg, "hello", {"$.ct": "text/plain", "color": "red & blue"})
        got = client.wait("c2d")
        assert got["body"] == "hello" and got["message_id"] == mid
        assert got["content_type"] == "text/plain"
        assert got["custom_properties"] == {"color": "red & blue"}
        assert azure.wait_c2d_completed(reg)[0]["state"] == "completed"

        client.wait("done")
        assert client.proc.wait(10) == 0, client.stderr()
        return client.lines
    finally:
        client.stop()


@pytest.fixture
def sdk_cmd():
    return [ref_python("azure"), str(FLOW)]


@pytest.mark.parametrize("case", ["sas", "x509", "group", "x509-group"])
def test_the_official_sdk_runs_the_whole_flow(tmp_path, sdk_cmd, case):
    sim, azure = start_sim(tmp_path / "sim")
    try:
        lines = azure_flow(sim, azure, sdk_cmd, case, tmp_path)
    finally:
        sim.stop()
    steps = [obj["step"] for obj in lines if obj["step"] != "eof"]
    assert steps == [
        "dps",
        "connected",
        "telemetry",
        "twin",
        "reported",
        "ready",
        "desired",
        "method",
        "c2d",
        "done",
    ]


def test_the_sdk_reconciles_desired_properties_after_a_reconnect(tmp_path):
    """Handler set before connect: the SDK GETs the twin at once (before its SUBSCRIBE
    to twin/res, hence the knob azure_twin_reply_unsubscribed), relies on the persistent
    session afterwards, and after a network loss GETs again and hands over the desired
    document changed while it was away."""
    sim, azure = start_sim(tmp_path / "sim")
    try:
        dev = azure.add_device("recon-1")
        azure.set_desired("recon-1", {"a": 1})
        cfg = {"hub": azure.hub_host, "device_id": "recon-1", "key": dev.key}
        cfg["ca_file"] = str(sim.ca.cert_pem_path)
        cmd = [ref_python("azure"), str(ROOT / "tests" / "ref" / "azure_reconnect.py")]
        client = FlowProcess(cmd, cfg, tmp_path / "client.log")
        try:
            client.wait("connected")
            assert client.wait("desired")["patch"] == {"a": 1, "$version": 2}
            azure.set_knobs(azure_connect_delay_s=1.0)  # away long enough for a change
            sim.drop("recon-1")
            assert azure.set_desired("recon-1", {"b": 2}) == 3  # while it is away
            azure.set_knobs(azure_connect_delay_s=0)
            client.wait("done")
            patches = [o["patch"] for o in client.lines if o["step"] == "desired"]
            assert patches[1] == {"a": 1, "b": 2, "$version": 3}
            assert sim.device("recon-1", "azure").connects == 2
        finally:
            client.stop()
    finally:
        sim.stop()


def test_the_sdk_renews_its_sas_before_expiry_and_the_hub_accepts_it(tmp_path):
    """TTL 123 s: the SDK reconnects with a fresh token every ~3 s (at se - 120 s), each
    before the hub would close the connection at se; no message is lost."""
    sim, azure = start_sim(tmp_path / "sim")
    try:
        dev = azure.add_device("renew-1")
        cfg = {"hub": azure.hub_host, "device_id": "renew-1", "key": dev.key}
        cfg.update(ca_file=str(sim.ca.cert_pem_path), ttl_s=123, count=6)
        cmd = [ref_python("azure"), str(ROOT / "tests" / "ref" / "azure_renew.py")]
        client = FlowProcess(cmd, cfg, tmp_path / "client.log")
        try:
            client.wait("done", timeout=30)
        finally:
            client.stop()
        bodies = [m["body"] for m in azure.telemetry("renew-1")]
        assert bodies == [b"m%d" % i for i in range(6)]
        assert sim.device("renew-1", "azure").connects >= 2
        assert not sim.events("renew-1", "refused") and not sim.events("renew-1", "expired")
    finally:
        sim.stop()
