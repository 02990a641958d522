"""The fault matrix against the product client: ArduinoCloudClient with store-and-forward
(tests/product_board.py) on the MicroPython unix port, talking TLS to the cloud emulator
(tools/cloudsim) through tools/faultproxy.py, producing a number every 100 ms.

Each case injects one fault (emulator killed and restarted, cut mid-publish, black hole
longer than the keepalive, refused reconnects, WiFi dropping, malformed and oversize
messages, wall clock stepped a year either way, a dashboard write made while the board is
offline), checks that the client recovers within a
bound, then stops producing, waits until every variable is acknowledged and compares:

- every number produced reached the cloud (QoS 1, at least once), except the ones the
  board saw replaced while still unacknowledged (a state client keeps only a variable's
  latest value; with 60 variables and faults of a few seconds there are normally none);
- no variable went back in the cloud's history, and the cloud's last value of each is the
  board's.

Figures (recovery time, duplicates, superseded, longest loop stall) are printed: run -s.
"""

import sys
import time
import uuid

import pytest
from mpy import ROOT, micropython_cmd, micropython_env

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.cloudsim import CloudSim  # noqa: E402
from tools.faultproxy import ProxyThread  # noqa: E402
from tools.soak import BoardProcess as _SoakBoardProcess  # noqa: E402

pytestmark = pytest.mark.timeout(90)

BOARD = ROOT / "tests" / "product_board.py"
NVARS = 60  # + "cmd": within the outbox's 64 state keys (tether.cloud.outbox)
RECOVER_S = 20  # backoff is capped at 1 s on this board; generous for a loaded machine
FLOWING = 8  # numbers acknowledged before a fault is injected


class BoardProcess(_SoakBoardProcess):
    """tools/soak.py's board process (status lines, control file, WiFi file, finish()),
    running tests/product_board.py instead of the soak board."""

    def start(self):
        import subprocess
        import threading

        cmd = micropython_cmd(BOARD, self.cfg_path)
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=micropython_env(),
            text=True,
            errors="replace",
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self


class Rig:
    def __init__(self, sim, tmp_path):
        self.sim = sim
        self.dir = tmp_path
        self.dev = sim.add_device(str(uuid.uuid4()), secret="pw-%d" % id(self))
        self.thing = self.dev.thing_id
        self.proxy = ProxyThread("127.0.0.1", sim.ports["password"])
        self.proxy.start()
        self.board = None

    def start_board(self, **over):
        cfg = {
            "device_id": self.dev.id,
            "password": self.dev.secret,
            "port": self.proxy.port,
            "ca": str(self.sim.ca.cert_der_path),
            "store_dir": str(self.dir / "store"),
            "nvars": NVARS,
            "period_ms": 100,
            "keepalive": 2,
            "status_ms": 200,
            "run_s": 80,
        }
        cfg.update(over)
        self.board = BoardProcess(self.dir, cfg).start()
        return self.board

    def ready(self, **over):
        b = self.start_board(**over)
        b.wait(lambda s: s["connected"], 30, "first connection")
        b.wait(lambda s: s["pushes"] >= FLOWING, 10, "values flowing before the fault")
        return b

    def in_flight(self):
        """Hold every chunk 250 ms in the proxy: from now on a push is always on its way
        (unacknowledged) when the fault strikes. resume() clears it."""
        p = self.board.status["pushes"]
        self.proxy.delay(250)
        self.board.wait(lambda s: s["pushes"] >= p + 2, 10, "pushes through the delay")
        time.sleep(0.2)

    def recovered(self, since_reconnects, what):
        t0 = time.monotonic()
        self.board.wait(
            lambda s: s["connected"] and s["reconnects"] > since_reconnects,
            RECOVER_S,
            "reconnect after " + what,
        )
        secs = time.monotonic() - t0
        p = self.board.status["pushes"]
        self.board.wait(lambda s: s["pushes"] >= p + 3, 10, "values flowing after " + what)
        return secs

    def received(self):
        got = []
        for i in range(NVARS):
            # 0 is every variable's registered value, pushed once at the first connection.
            hist = [v for _t, v in self.sim.history(self.thing, "v%d" % i) if v != 0]
            got.append(hist)
        return got

    def verdict(self, end):
        hist = self.received()
        seen = set()
        total = 0
        went_back = []
        for i, h in enumerate(hist):
            total += len(h)
            seen.update(h)
            if any(h[j] > h[j + 1] for j in range(len(h) - 1)):
                went_back.append(("v%d" % i, h))
        superseded = set(end["superseded_values"]) - {0}
        want = set(range(1, end["last"] + 1)) - superseded
        lost = sorted(want - seen)
        cloud = self.sim.values(self.thing)
        stale = [
            ("v%d" % i, cloud.get("v%d" % i), v)
            for i, v in enumerate(end["values"])
            if cloud.get("v%d" % i) != v
        ]
        return {
            "produced": end["last"],
            "delivered": len(want & seen),
            "lost": len(lost),
            "lost_values": lost[:20],
            "superseded": len(superseded),
            "duplicates": total - len(seen),
            "went_back": went_back[:5],
            "stale": stale[:5],
        }

    def finish(self, what, recover_s=None):
        end = self.board.finish(40)
        assert end is not None and "superseded_values" in end, self.board.tail[-30:]
        v = self.verdict(end)
        print(
            "\n%s: produced %d, delivered %d, lost %d, superseded %d, duplicates %d, "
            "reconnects %d, recovery %s s, longest stall %d ms %s"
            % (
                what,
                v["produced"],
                v["delivered"],
                v["lost"],
                v["superseded"],
                v["duplicates"],
                end["reconnects"],
                "-" if recover_s is None else "%.1f" % recover_s,
                end["stall_ms"],
                end["stall_by_phase"],
            )
        )
        assert v["lost"] == 0, v
        assert v["went_back"] == [] and v["stale"] == [], v
        assert v["delivered"] >= FLOWING, v
        return v, end

    def close(self):
        if self.board is not None:
            self.board.stop()
        self.proxy.stop()


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    s = CloudSim(tmp_path_factory.mktemp("cloudsim"), dashboard=False).start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def rig(sim, tmp_path):
    r = Rig(sim, tmp_path)
    try:
        yield r
    finally:
        r.close()


def test_the_cloud_killed_and_restarted(rig):
    b = rig.ready()
    before = b.status["reconnects"]
    rig.in_flight()
    rig.proxy.refuse()  # no reconnect into a half-started emulator
    rig.sim.restart()  # the connection dies with it; registry and values are kept
    time.sleep(1.5)
    rig.proxy.resume()
    secs = rig.recovered(before, "emulator restart")
    rig.finish("emulator killed and restarted", secs)


def test_connection_cut_mid_publish(rig):
    b = rig.ready()
    before = b.status["reconnects"]
    up = rig.proxy.stats["bytes_up"]  # one connection so far: handshake + session + pushes
    # The next connections are torn part-way: in the TLS handshake, then in the pushes.
    for cut in (150, up + 200, up + 450):
        drops = rig.proxy.stats["dropped"]
        rig.proxy.cut_after(cut)
        rig.proxy.drop()
        deadline = time.monotonic() + RECOVER_S
        while rig.proxy.stats["dropped"] < drops + 2 and time.monotonic() < deadline:
            time.sleep(0.05)  # the drop above, then the cut of the next connection
        assert rig.proxy.stats["dropped"] >= drops + 2, (cut, rig.proxy.stats, b.status)
    rig.proxy.cut_after(None)
    for _ in range(3):  # and a few plain drops while values are in flight
        time.sleep(0.35)
        rig.proxy.drop()
    secs = rig.recovered(before, "cuts mid-publish")
    rig.finish("connection cut mid-publish", secs)


def test_black_hole_longer_than_the_keepalive(rig):
    b = rig.ready(keepalive=1)
    before = b.status["reconnects"]
    rig.in_flight()
    rig.proxy.blackhole()
    # keepalive 1 s: the client must declare the link dead (1.5 x keepalive, then a ping
    # timeout) while the black hole lasts, without a byte from the other side.
    b.wait(lambda s: not s["connected"], 6, "the dead link noticed")
    time.sleep(1)
    rig.proxy.resume()
    secs = rig.recovered(before, "black hole")
    rig.finish("black hole > keepalive 1 s", secs)


def test_refused_reconnects_for_a_while(rig):
    b = rig.ready()
    before = b.status["reconnects"]
    failed = b.status["connect_failures"]
    rig.in_flight()
    rig.proxy.refuse()
    rig.proxy.drop()
    b.wait(lambda s: s["connect_failures"] >= failed + 2, RECOVER_S, "refused attempts")
    assert not b.status["connected"]
    rig.proxy.resume()
    secs = rig.recovered(before, "refusals")
    rig.finish("refused reconnects", secs)


def test_the_wifi_link_drops(rig):
    b = rig.ready()
    before = b.status["reconnects"]
    rig.in_flight()
    b.wifi(False)  # the board's link watcher must drop the connection itself
    b.wait(lambda s: s["wifi_failures"] >= 2, RECOVER_S, "the WiFi stage failing")
    assert not b.status["connected"]
    rig.proxy.resume()
    b.wifi(True)
    secs = rig.recovered(before, "WiFi drop")
    rig.finish("WiFi link dropped", secs)


def test_malformed_and_oversize_messages_cost_no_connection_and_no_value(rig):
    b = rig.ready()
    before = b.status["reconnects"]
    bad = b.status["bad_messages"]
    dev, thing = rig.dev.id, rig.thing
    topics = ("/a/t/%s/e/i" % thing, "/a/d/%s/c/dw" % dev, "/a/d/%s/e/i" % dev)
    payloads = (b"\xff", b"\x9f\x9f\x9f", b"\xda\x00\x01\x04\x00\x81", b"\x81\xa1\x00")
    for topic in topics:
        for payload in payloads:
            rig.sim.publish_raw(topic, payload)
    rig.sim.publish_raw(topics[0], b"\x81\xa2\x00\x62v1\x02\x18\x2a" + b"x" * 20000)
    n = len(topics) * len(payloads)
    st = b.wait(lambda s: s["bad_messages"] >= bad + n, 10, "malformed messages counted")
    b.wait(lambda s: s["oversize_dropped"] >= 1, 10, "the oversize message dropped")
    v, end = rig.finish("malformed and oversize messages")
    assert end["reconnects"] == before, (end, st)  # the connection survived all of it


def test_the_wall_clock_jumps_a_year_either_way(rig):
    b = rig.ready()
    before = b.status["reconnects"]
    t0 = b.status["unix"]
    b.command("clock", 86400 * 366)
    st = b.wait(lambda s: s["clock_jumps"] == 1, 10, "clock jump forward")
    assert st["unix"] >= t0 + 86400 * 366, st
    p = st["pushes"]
    b.wait(lambda s: s["pushes"] >= p + 5, 10, "values flowing a year later")
    b.command("clock", -86400 * 2 * 366)
    st = b.wait(lambda s: s["clock_jumps"] == 2, 10, "clock jump back")
    assert st["unix"] < t0, st
    p = st["pushes"]
    b.wait(lambda s: s["pushes"] >= p + 5, 10, "values flowing a year earlier")
    v, end = rig.finish("clock jumps +-1 year")
    # Every timeout runs on ticks: a wall-clock step must not cost a reconnect.
    assert end["reconnects"] == before, end


def test_a_cloud_write_made_while_offline_reaches_the_board_after_the_reconnect(rig):
    b = rig.ready()
    before = b.status["reconnects"]
    rig.proxy.refuse()
    rig.proxy.drop()
    b.wait(lambda s: not s["connected"], 10, "offline")
    rig.sim.write(rig.thing, "cmd", 42)  # the dashboard, while the board is away
    assert b.status["cmd"] == 0
    rig.proxy.resume()
    secs = rig.recovered(before, "the offline write")
    # The client asks for last values at every reconnect; cloud wins for a read-write
    # variable without an unacknowledged local change (the arduino-iot-cloud C++ rule).
    b.wait(lambda s: s["cmd"] == 42, 10, "the offline write applied")
    rig.finish("cloud write while offline", secs)
