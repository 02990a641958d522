"""Fidelity (issue 15 item 7): a real client runs the whole Astarte flow against the emulator.

The official astarte-device-sdk 0.14 (in its own venv, tests/refvenv.py) is driven through
tests/ref/astarte_sdk_driver.py, a JSON-lines protocol on stdin/stdout. The emulator is only
trusted because the SDK accepts it: every step asserts both what the emulator stored and
what the SDK's callbacks printed. `astarte_flow(sim, start_client, workdir)` takes "which
client" as a function, so Tether's own Astarte client runs the very same flow with a driver
of its own that speaks the same protocol.

The broker restart is `sim.restart_broker()`: the MQTT side restarts while the pairing API
stays up. (A whole-emulator `sim.restart()` takes the pairing API down too, and the SDK
calls verify from paho's on_disconnect: the refused HTTPS connection raises in paho's
thread, which then dies, so the SDK never reconnects. That is the SDK's bug, not a
reconnection test.)
"""

import base64
import json
import os
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
from refvenv import ref_python

from tools.cloudsim import CloudSim

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.timeout(120)

IFACES = ROOT / "tests" / "ref" / "astarte_interfaces"
SENSORS = "org.tether.test.Sensors"
GEO = "org.tether.test.Geolocation"
DEV_PROPS = "org.tether.test.DeviceSettings"
SRV_PROPS = "org.tether.test.ServerSettings"
COMMANDS = "org.tether.test.Commands"
INTROSPECTION = {
    SENSORS: (1, 0),
    GEO: (1, 1),
    DEV_PROPS: (0, 2),
    SRV_PROPS: (1, 0),
    COMMANDS: (2, 0),
}
T0_MS = 1700000000123  # an explicit timestamp, ms


class DriverError(AssertionError):
    pass


class Driver:
    """A client under test in a subprocess, spoken to in JSON lines (see the SDK driver)."""

    def __init__(self, cmd, env, log_path):
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=env,
            cwd=str(ROOT),
        )
        self.lines = []
        self._cond = threading.Condition()
        self._next = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                obj = json.loads(line)
            except ValueError:
                obj = {"ev": "garbage", "line": line}
            with self._cond:
                self.lines.append(obj)
                self._cond.notify_all()
        with self._cond:
            self.lines.append({"ev": "exited"})
            self._cond.notify_all()

    def wait(self, pred, timeout=20, after=0, what="an event"):
        """The first line (index >= after) for which pred holds: (index, line)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i in range(after, len(self.lines)):
                    if pred(self.lines[i]):
                        return i, self.lines[i]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        "%s not seen in %s s; stderr:\n%s" % (what, timeout, self.stderr())
                    )
                self._cond.wait(left)

    def mark(self):
        with self._cond:
            return len(self.lines)

    def try_call(self, op, timeout=30, **kw):
        self._next += 1
        cid = self._next
        self.proc.stdin.write(json.dumps(dict(kw, id=cid, op=op)) + "\n")
        self.proc.stdin.flush()
        _, reply = self.wait(
            lambda o: o.get("ev") == "reply" and o.get("id") == cid or o.get("ev") == "exited",
            timeout,
            what="reply to %s" % op,
        )
        if reply.get("ev") == "exited":
            raise DriverError("client exited during %s:\n%s" % (op, self.stderr()))
        return reply["ok"], reply.get("result") if reply["ok"] else reply.get("error")

    def call(self, op, timeout=30, **kw):
        ok, result = self.try_call(op, timeout, **kw)
        if not ok:
            raise DriverError("%s failed: %s\n%s" % (op, result, self.stderr()))
        return result

    def data(self, interface, path, after=0, timeout=20):
        """The value of the next on_data_received for interface+path."""
        _, line = self.wait(
            lambda o: o.get("ev") == "data" and o["interface"] == interface and o["path"] == path,
            timeout,
            after,
            "data on %s%s" % (interface, path),
        )
        return line["value"]

    def stderr(self):
        self._log.flush()
        return Path(self.log_path).read_text()[-4000:]

    def close(self):
        if self.proc.poll() is None:
            try:
                self.try_call("exit", timeout=5)
            except Exception:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


def sdk_client(workdir, sim):
    """start_client for the official SDK: its venv, the test CA trusted through the env."""
    python = ref_python("astarte")
    ca = str(sim.ca.cert_pem_path)

    def start(device_id, realm, pairing_url, persistency_dir, interfaces_dir):
        env = dict(os.environ, SSL_CERT_FILE=ca, REQUESTS_CA_BUNDLE=ca, PYTHONUNBUFFERED="1")
        env.pop("PYTHONPATH", None)
        cmd = [python, str(ROOT / "tests" / "ref" / "astarte_sdk_driver.py")]
        cmd += [device_id, realm, pairing_url, str(persistency_dir), str(interfaces_dir)]
        return Driver(cmd, env, str(Path(workdir) / "sdk-stderr.log"))

    return start


def new_device_id():
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


def astarte_flow(sim, start_client, workdir):
    """Issue 15 item 7 for one client; returns what client-specific checks need."""
    astarte = sim.clouds["astarte"]
    astarte.add_interfaces_dir(IFACES)
    device_id = new_device_id()
    persist = Path(workdir) / "persistency"
    persist.mkdir(parents=True, exist_ok=True)
    client = start_client(device_id, "test", astarte.pairing_url, persist, IFACES)
    try:
        return _flow(sim, astarte, client, device_id)
    finally:
        client.close()


def _flow(sim, astarte, client, device_id):
    obs = {"device_id": device_id}
    # Register with an agent JWT signed by the realm key.
    secret = client.call("register", jwt=astarte.agent_jwt())
    dev = astarte.find(device_id, "test")
    assert dev is not None and secret == dev.secret and not dev.secret_used
    # Before the first connect: a server property (sent after emptyCache), and a device
    # property the server remembers but the device never set (its purge list removes it).
    assert astarte.set_server_property(device_id, SRV_PROPS, "/threshold", 12.5) is False
    astarte.seed_device_property(device_id, DEV_PROPS, "/slot9/level", 9)

    client.call("connect", secret=secret)
    client.wait(lambda o: o.get("ev") == "connected", what="on_connected")
    sim.wait_connected(device_id, cloud="astarte", timeout=20)
    assert dev.secret_used and len(dev.certs) == 1
    astarte.wait(lambda: dev.introspection == INTROSPECTION, 10)
    astarte.wait(lambda: dev.purges, 10)
    assert dev.purges[0]["entries"] == [] and dev.purges[0]["purged"] == [
        (DEV_PROPS, "/slot9/level")
    ]
    assert dev.empty_cache == 1
    base = "test/" + device_id
    for topic in (base + "/control/consumer/properties", "%s/%s/#" % (base, SRV_PROPS)):
        assert dev.sub_qos.get(topic) == 2, dev.sub_qos
    assert dev.sub_qos.get("%s/%s/#" % (base, COMMANDS)) == 2
    assert client.data(SRV_PROPS, "/threshold") == 12.5

    # The secret is used: registering again is refused (422).
    ok, err = client.try_call("register", jwt=astarte.agent_jwt())
    assert not ok and "AlreadyRegistered" in err, err

    # Datastreams: individual with explicit timestamps (double, integer, longinteger), and an
    # object aggregate.
    client.call("send", interface=SENSORS, path="/s1/temperature", value=21.5, timestamp_ms=T0_MS)
    client.call("send", interface=SENSORS, path="/s1/count", value=42, timestamp_ms=T0_MS + 1)
    client.call("send", interface=SENSORS, path="/s1/uptime", value=2**40, timestamp_ms=T0_MS + 2)
    geo = {"latitude": 45.07, "longitude": 7.69, "label": "Torino"}
    client.call("send_aggregate", interface=GEO, path="/home", value=geo)
    up = astarte.wait_datastream(device_id, SENSORS, "/s1/uptime")
    temp = astarte.wait_datastream(device_id, SENSORS, "/s1/temperature")
    count = astarte.wait_datastream(device_id, SENSORS, "/s1/count")
    assert (temp["value"], count["value"], up["value"]) == (21.5, 42, 2**40)
    assert int(temp["timestamp"].timestamp() * 1000) == T0_MS
    assert int(up["timestamp"].timestamp() * 1000) == T0_MS + 2
    assert temp["qos"] == temp["expected_qos"] == 1
    rec = astarte.wait_datastream(device_id, GEO, "/home")
    assert rec["value"] == geo and rec["timestamp"] is None and rec["qos"] == 2

    # A device property set, another set then unset.
    client.call("send", interface=DEV_PROPS, path="/name", value="board-1")
    client.call("send", interface=DEV_PROPS, path="/slot1/level", value=3)
    astarte.wait_property(device_id, DEV_PROPS, "/slot1/level", 3)
    client.call("unset", interface=DEV_PROPS, path="/slot1/level")
    astarte.wait_property(device_id, DEV_PROPS, "/slot1/level", unset=True)
    assert astarte.properties(device_id) == {DEV_PROPS + "/name": "board-1"}

    # Server properties and datastreams while connected.
    mark = client.mark()
    assert astarte.set_server_property(device_id, SRV_PROPS, "/slot1/enabled", True)
    assert astarte.set_server_property(device_id, SRV_PROPS, "/slot2/enabled", True)
    assert client.data(SRV_PROPS, "/slot1/enabled", mark) is True
    assert client.data(SRV_PROPS, "/slot2/enabled", mark) is True
    assert astarte.unset_server_property(device_id, SRV_PROPS, "/threshold")
    assert client.data(SRV_PROPS, "/threshold", mark) is None
    assert astarte.send_server_datastream(device_id, COMMANDS, "/lamp/command", "on")
    assert astarte.send_server_datastream(device_id, COMMANDS, "/lamp/setpoint", 19.5)
    assert client.data(COMMANDS, "/lamp/command", mark) == "on"
    assert client.data(COMMANDS, "/lamp/setpoint", mark) == 19.5
    props = _client_props(client)
    assert props[(SRV_PROPS, "/slot2/enabled")] is True
    assert (SRV_PROPS, "/threshold") not in props
    assert props[(DEV_PROPS, "/name")] == "board-1"

    # While the broker restarts: a server property goes away (the consumer purge list must
    # remove it from the client's cache) and the server remembers a stale device property
    # (the producer purge list must remove it from the server).
    astarte.unset_server_property(device_id, SRV_PROPS, "/slot2/enabled", notify=False)
    astarte.seed_device_property(device_id, DEV_PROPS, "/slot8/level", 8)
    connects, mark = dev.connects, client.mark()
    sim.restart_broker()
    _, down = client.wait(lambda o: o.get("ev") == "disconnected", 20, mark, "on_disconnected")
    assert down["rc"] != 0
    client.wait(lambda o: o.get("ev") == "connected", 30, mark, "on_connected again")
    astarte.wait(lambda: dev.connected and dev.connects > connects and len(dev.purges) >= 2, 20)
    assert dev.empty_cache == 2
    assert dev.purges[-1]["entries"] == [DEV_PROPS + "/name"]
    assert dev.purges[-1]["purged"] == [(DEV_PROPS, "/slot8/level")]
    assert astarte.properties(device_id) == {DEV_PROPS + "/name": "board-1"}
    assert client.data(SRV_PROPS, "/slot1/enabled", mark) is True  # sent again

    deadline = time.monotonic() + 10
    while (SRV_PROPS, "/slot2/enabled") in _client_props(client):
        assert time.monotonic() < deadline, "the consumer purge list was not applied"
        time.sleep(0.1)
    props = _client_props(client)
    assert props[(SRV_PROPS, "/slot1/enabled")] is True and props[(DEV_PROPS, "/name")]

    # Data flows after the reconnection too.
    client.call("send", interface=SENSORS, path="/s2/temperature", value=22.5, timestamp_ms=T0_MS)
    assert astarte.wait_datastream(device_id, SENSORS, "/s2/temperature")["value"] == 22.5

    mark = client.mark()
    client.call("disconnect")
    _, down = client.wait(lambda o: o.get("ev") == "disconnected", 10, mark, "on_disconnected")
    assert down["rc"] == 0
    sim.wait_connected(device_id, connected=False, cloud="astarte", timeout=10)
    assert astarte.rejected(device_id) == []
    obs["purges"] = astarte.purges(device_id)
    obs["datastreams"] = astarte.datastreams(device_id)
    obs["events"] = sim.events(device_id)
    return obs


def _client_props(client):
    return {(i, p): v for i, _major, p, v in client.call("props")}


@pytest.fixture
def astarte_sim(tmp_path):
    sim = CloudSim(tmp_path / "cloudsim", clouds=["astarte"], dashboard=False).start()
    try:
        yield sim
    finally:
        sim.stop()


def test_sdk_runs_the_whole_flow(astarte_sim, tmp_path):
    obs = astarte_flow(astarte_sim, sdk_client(tmp_path, astarte_sim), tmp_path)
    # What the SDK does that Tether will do differently (protocols.md §5.12): the producer
    # purge list's size header is little-endian.
    assert [p["header"] for p in obs["purges"]] == ["big", "little"]  # empty list: 0 either way


def test_sdk_never_reconnects_when_pairing_was_down_at_the_drop(astarte_sim, tmp_path):
    """Why the flow restarts the broker only: after an unexpected disconnect the SDK calls
    verify from paho's thread; a refused HTTPS connection raises there and kills the thread,
    so the device stays down although both servers are back a moment later. (A behaviour
    of the SDK that Tether must not copy; recorded here so that a new SDK version that
    fixes it shows up.)"""
    astarte = astarte_sim.clouds["astarte"]
    astarte.add_interfaces_dir(IFACES)
    persist = tmp_path / "persistency"
    persist.mkdir()
    client = sdk_client(tmp_path, astarte_sim)(
        new_device_id(), "test", astarte.pairing_url, persist, IFACES
    )
    try:
        secret = client.call("register", jwt=astarte.agent_jwt())
        client.call("connect", secret=secret)
        client.wait(lambda o: o.get("ev") == "connected", what="on_connected")
        mark = client.mark()
        astarte_sim.restart()  # the pairing API goes down with the broker
        client.wait(lambda o: o.get("ev") == "disconnected", 20, mark, "on_disconnected")
        with pytest.raises(TimeoutError):
            client.wait(lambda o: o.get("ev") == "connected", 4, mark, "a reconnection")
        assert "ConnectionError" in client.stderr() and "verify" in client.stderr()
        assert client.call("is_connected") is False
    finally:
        client.close()
