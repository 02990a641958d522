"""Store-and-forward through the Arduino client: the real firmware on the MicroPython unix
port, with a tether.store.StateOutbox, talking TLS to the cloud emulator through
tools/faultproxy.py.

- a value changed while the cloud is unreachable reaches it after the reconnect;
- a value queued while offline survives a power cut (SIGKILL) and is delivered by the
  next boot, which also restores it locally;
- malformed messages from the emulator cost no reconnect and no value;
- the longest loop stall while connecting (TCP + TLS + MQTT) and reconnecting is reported.
"""

import json
import sys
import time
import uuid

import pytest
from cloudsim_fixtures import cloudsim  # noqa: F401
from mpy import ROOT

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.cloudsim.board import BoardProcess, write_board_dir  # noqa: E402
from tools.faultproxy import ProxyThread  # noqa: E402

pytestmark = pytest.mark.timeout(120)

APP = """
import asyncio
import json

from tether.stallmeter import StallMeter
from tether.store import StateOutbox, Store


def setup(client):
    client.DISCOVERY_FIRST_MS = 300
    client.session.backoff_max_ms = 2000  # recover fast in a test
    client.outbox = StateOutbox(Store(%(store)r))
    client.register("level", value=None, on_write=lambda c, v: print("app: write", v))
    print("app: ready")


async def loop(client):
    s = client.session
    m = StallMeter(2, phase_fn=lambda: s.stage or s.state).start()
    seen = None
    n = 0
    while True:
        await asyncio.sleep(0.1)
        n += 1
        if n %% 10 == 0:
            d = s.diagnostics()
            d = {k: d[k] for k in ("queue_depth", "reconnects", "failures_by_stage", "state")}
            print("app: stall " + json.dumps({"longest": m.longest_ms, "by": m.by_phase, "d": d}))
        try:
            with open(%(control)r) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text and text != seen:
            seen = text
            client["level"] = int(text)
            print("app: level %%s depth %%d" %% (text, client.outbox.store.depth))
"""


class Device:
    def __init__(self, sim, tmp_path):
        self.sim = sim
        self.dev = sim.add_device(str(uuid.uuid4()), secret="pw")
        self.thing = self.dev.thing_id
        self.proxy = ProxyThread("127.0.0.1", sim.ports["password"])
        self.proxy.start()
        self.dir = tmp_path / "board"
        self.control = self.dir / "control"
        self.settings = write_board_dir(
            sim, self.dev.id, self.dir, app="fault_app", extra={"port": self.proxy.port}
        )
        app = APP % {"store": str(self.dir / "outbox"), "control": str(self.control)}
        (self.dir / "fault_app.py").write_text(app)
        self.board = None

    def boot(self):
        self.board = BoardProcess(self.settings)
        self.board.wait_line("app: ready", timeout=20)
        return self.board

    def set_level(self, value):
        mark = len(self.board.lines)
        tmp = self.control.with_suffix(".tmp")
        tmp.write_text(str(value))
        tmp.replace(self.control)
        return self.board.wait_line("app: level %d" % value, timeout=10, start=mark)

    def offline(self):
        mark = len(self.board.lines)
        self.proxy.refuse()
        self.proxy.drop()
        self.board.wait_line("connection closed", timeout=20, start=mark)

    def stall(self):
        """The app's latest stall report printed after now (one comes every second)."""
        i = self.board.wait_line("app: stall ", timeout=5, start=len(self.board.lines))
        return json.loads(self.board.lines[i].split("app: stall ", 1)[1])

    def wait_diag(self, pred, timeout=15):
        """The first stall/diagnostics report (from now on) whose counters satisfy pred."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rep = self.stall()
            if pred(rep["d"]):
                return rep["d"]
        raise AssertionError("no report matched; last: %s" % rep)

    def close(self):
        if self.board is not None:
            self.board.stop()
        self.proxy.stop()


@pytest.fixture
def device(cloudsim, tmp_path):  # noqa: F811
    d = Device(cloudsim, tmp_path)
    try:
        yield d
    finally:
        d.close()


def test_a_value_changed_offline_reaches_the_cloud_after_the_reconnect(device):
    b = device.boot()
    b.wait_line("attached to thing", timeout=20)
    device.set_level(5)
    assert device.sim.wait_for_value(device.thing, "level", 5, timeout=10) == 5
    device.offline()
    device.set_level(6)
    device.set_level(7)  # replaces 6 in the queue: the cloud keeps last values
    d = device.wait_diag(lambda d: d["failures_by_stage"].get("tcp", 0) >= 1)
    assert d["queue_depth"] == 1 and d["state"] != "ready", d  # 7 waits on "flash"
    t0 = time.monotonic()
    mark = len(b.lines)
    device.proxy.resume()
    assert device.sim.wait_for_value(device.thing, "level", 7, timeout=30) == 7
    b.wait_line("attached to thing", timeout=10, start=mark)
    stall = device.stall()
    print(
        "\noffline change delivered %.1f s after the link came back; loop stall %s"
        % (time.monotonic() - t0, stall)
    )
    assert stall is not None and stall["longest"] < 1000, stall
    d = device.wait_diag(lambda d: d["state"] == "ready")
    assert d["queue_depth"] == 0 and d["reconnects"] >= 1, d


def test_a_value_queued_offline_survives_a_power_cut(device):
    b = device.boot()
    b.wait_line("attached to thing", timeout=20)
    device.set_level(5)
    device.sim.wait_for_value(device.thing, "level", 5, timeout=10)
    device.offline()
    i = device.set_level(42)
    assert "depth 1" in b.lines[i], b.lines[i]
    b.proc.kill()  # power cut: RAM is gone, only the outbox on "flash" survives
    b.proc.wait(5)
    device.control.unlink()  # the new boot must not set the value itself
    since = time.time()
    device.proxy.resume()
    b2 = device.boot()
    assert device.sim.wait_for_value(device.thing, "level", 42, timeout=30, since=since) == 42
    b2.wait_line("attached to thing", timeout=10)
    # Restored locally too: the cloud's older last value (5) did not overwrite it.
    assert "app: write 5" not in b2.output()
    assert "app: write 42" in b2.output()  # restored from the outbox before connecting


def test_malformed_messages_from_the_emulator_cost_no_value(device):
    b = device.boot()
    b.wait_line("attached to thing", timeout=20)
    device.set_level(1)
    device.sim.wait_for_value(device.thing, "level", 1, timeout=10)
    mark = len(b.lines)
    dev = device.dev.id
    for topic in ("/a/t/%s/e/i" % device.thing, "/a/d/%s/c/dw" % dev, "/a/d/%s/e/i" % dev):
        for payload in (b"\xff", b"\x9f\x9f\x9f", b"\xda\x00\x01\x04\x00\x81", b"x" * 3000):
            device.sim.publish_raw(topic, payload)
    device.set_level(2)
    assert device.sim.wait_for_value(device.thing, "level", 2, timeout=10) == 2
    out = "\n".join(b.lines[mark:])
    assert "bad message" in out
    assert "connection closed" not in out  # no reconnect was needed
