"""Soak run and fault rig: a simulated board publishing QoS 1 values through the fault
proxy to mosquitto while faults are injected, and the bookkeeping that proves none is lost.

    make soak                       # SOAK_SECONDS=600 by default
    python -m tools.soak --seconds 300 --seed 7

This file is two programs:

* `micropython tools/soak.py board CONFIG.json` is the board (MicroPython subset, runs on
  the unix port and CPython): WiFi (the fake radio) -> time -> DNS -> TCP -> MQTT through
  tether.session, a producer that appends numbered values to a tether.store queue, the
  store forwarded with QoS 1 (acked only after PUBACK), a link watcher, a stall meter, a
  control file (clock jumps, stop) and one status line (`@@S {json}`) every status_ms.
* On CPython, `Rig` (used by tests/test_faults_*.py and by the soak run) starts mosquitto,
  a tools.faultproxy.ProxyThread in front of it, a paho-mqtt collector subscribed on the
  broker side, and the board as a unix-port process; `Rig.verdict()` compares the values
  the board produced with the values that arrived: lost (must be 0) and duplicates.

Delivery is at least once: a value whose PUBACK was lost is sent again after the
reconnect, so duplicates are expected and counted; a loss is a failure.
"""

import sys

MICROPYTHON = sys.implementation.name == "micropython"

# ---------------------------------------------------------------------------------------
# The board (MicroPython subset)
# ---------------------------------------------------------------------------------------


class Board:
    def __init__(self, cfg):
        import asyncio

        from tether import log
        from tether.hal import clock
        from tether.hal.fakes import FakeClock, FakeNetwork, FakeRadio
        from tether.hal.network import get_network
        from tether.session import Session
        from tether.stallmeter import StallMeter
        from tether.store import Store

        log.basicConfig(level=cfg.get("log_level", log.WARNING))
        self.cfg = cfg
        self.asyncio = asyncio
        self.store = Store(cfg["store_dir"], 4096, cfg.get("max_segments", 16))
        self.next_value = cfg.get("first", 1)
        self.count = cfg.get("count", 0)
        self.produced = 0
        self.last_value = None
        self.store_full = 0
        self.producing = True
        self.messages_in = 0
        self.bad_messages = 0
        self.link_drops = 0
        self.clock_jumps = 0
        self.done = False
        self.mqtt = None
        self.heap = []  # (seconds since start, heap free after a collect)
        radio = FakeRadio(control=cfg.get("wifi_control"), assoc_ms=50)
        self.station = get_network("fake", network_module=FakeNetwork("cyw43", radio))
        self.clock = FakeClock(1970, unix_s=cfg.get("unix_s", 1795000000))
        clock.set_clock(self.clock)
        self.clockmod = clock
        s = Session(
            self.connect,
            self.serve,
            backoff_min_ms=cfg.get("backoff_min_ms", 1000),
            backoff_max_ms=cfg.get("backoff_max_ms", 32000),
            connect_timeout_ms=cfg.get("connect_timeout_ms", 10000),
            sync_timeout_ms=cfg.get("sync_timeout_ms", 10000),
            store=self.store,
        )
        s.add_stage("wifi", self.wifi, 10000)
        s.add_stage("time", self.time_ok, 5000)
        s.add_stage("dns", s.dns_stage(cfg["host"], cfg["port"], self.station.isconnected), 5000)
        self.session = s
        self.meter = StallMeter(2, phase_fn=self.phase)

    def phase(self):
        s = self.session
        return s.stage or s.state

    # ---- the chain -------------------------------------------------------------------

    async def wifi(self):
        if not self.station.isconnected():
            await self.station.connect("soak-ap", "soak-key", 5000)

    async def time_ok(self):
        if not self.clockmod.is_sane():
            raise OSError(116, "clock not set")

    async def connect(self):
        from tether.mqtt import MQTTClient

        c = self.cfg
        mqtt = MQTTClient(
            c["client_id"],
            self.session.address or c["host"],
            c["port"],
            keepalive=c.get("keepalive", 10),
            connect_timeout_ms=c.get("connect_timeout_ms", 10000),
            max_packet=c.get("max_packet", 2048),
            on_message=self.on_message,
        )
        await mqtt.connect()
        self.mqtt = mqtt
        return mqtt

    async def serve(self, mqtt):
        from tether.store import forward

        await mqtt.subscribe(self.cfg["cmd_topic"], 1)  # again on every connection
        self.session.ready()
        topic = self.cfg["topic"]

        async def publish(entry):
            await mqtt.publish(topic, entry.payload, 1)

        while True:
            await forward(self.store, publish)
            self.wake.clear()
            if self.store.peek() is None:
                await self.wake.wait()

    def on_message(self, topic, payload, retain=False, qos=0):
        from tether import cbor

        self.messages_in += 1
        try:
            cbor.loads(payload)
        except cbor.CBORError:
            self.bad_messages += 1

    # ---- tasks -----------------------------------------------------------------------

    async def producer(self):
        from tether.store import StoreFull

        period = self.cfg.get("period_ms", 20) / 1000
        while self.producing and (not self.count or self.produced < self.count):
            v = self.next_value
            try:
                self.store.put_telemetry(b"%d %d" % (v, self.clockmod.unix_time()))
            except StoreFull:
                self.store_full += 1
                await self.asyncio.sleep(period)
                continue
            self.next_value += 1
            self.produced += 1
            self.last_value = v
            self.wake.set()
            await self.asyncio.sleep(period)
        self.producing = False
        print("@@PRODUCED " + self.json.dumps({"last": self.last_value, "n": self.produced}))

    async def link_watch(self):
        # The TCP connection cannot outlive the WiFi link: end the round when it goes.
        while True:
            await self.asyncio.sleep(0.1)
            conn = self.session.conn
            if conn is not None and not self.station.isconnected():
                self.link_drops += 1
                conn.close()

    async def control(self):
        path = self.cfg.get("control")
        done = 0
        while path:
            await self.asyncio.sleep(0.1)
            try:
                with open(path) as f:
                    lines = f.read().split("\n")
            except OSError:
                continue
            for line in lines:
                words = line.split()
                if len(words) < 2 or int(words[0]) <= done:
                    continue
                done = int(words[0])
                cmd = words[1]
                if cmd == "clock":
                    self.clock.set_unix(self.clockmod.unix_time() + int(words[2]))
                    self.clock_jumps += 1
                elif cmd == "stop":
                    self.producing = False
                elif cmd == "exit":
                    self.done = True

    def status(self):
        import gc

        s = self.session
        m = self.mqtt.stats if self.mqtt is not None else {}
        free = gc.mem_free() if hasattr(gc, "mem_free") else None
        return {
            "produced": self.produced,
            "last": self.last_value,
            "producing": self.producing,
            "depth": self.store.depth,
            "dropped": self.store.dropped,
            "store_full": self.store_full,
            "state": s.state,
            "stage": s.stage,
            "connects": s.connects,
            "reconnects": s.reconnects,
            "attempts": s.attempts,
            "failures_by_stage": s.failures_by_stage,
            "connection_lost": s.connection_lost,
            "link_drops": self.link_drops,
            "clock_jumps": self.clock_jumps,
            "messages_in": self.messages_in,
            "bad_messages": self.bad_messages,
            "mqtt_oversize_dropped": m.get("oversize_dropped", 0),
            "stall_ms": self.meter.longest_ms,
            "stall_by_phase": self.meter.by_phase,
            "stall_events": self.meter.events,
            "heap_free": free,
            "heap_min": s.heap_min,
            "unix": self.clockmod.unix_time(),
        }

    async def reporter(self):
        import gc

        from tether.compat import ticks_diff, ticks_ms

        t0 = ticks_ms()
        every = self.cfg.get("status_ms", 500) / 1000
        while True:
            await self.asyncio.sleep(every)
            gc.collect()
            self.session._note_heap()
            print("@@S " + self.json.dumps(self.status()))
            if self.cfg.get("heap_every_s"):
                secs = ticks_diff(ticks_ms(), t0) // 1000
                if not self.heap or secs - self.heap[-1][0] >= self.cfg["heap_every_s"]:
                    if hasattr(gc, "mem_free"):
                        self.heap.append((secs, gc.mem_free()))
            if not self.producing and self.store.depth == 0 and self.cfg.get("exit_when_done"):
                self.done = True

    async def main(self):
        import json

        self.json = json
        self.wake = self.asyncio.Event()
        self.meter.start()
        tasks = [
            self.asyncio.create_task(f())
            for f in (self.producer, self.link_watch, self.control, self.reporter)
        ]
        run = self.asyncio.create_task(self.session.run())
        from tether.compat import ticks_diff, ticks_ms

        t0 = ticks_ms()
        limit = self.cfg.get("run_s", 600) * 1000
        while not self.done and ticks_diff(ticks_ms(), t0) < limit:
            await self.asyncio.sleep(0.05)
        st = self.status()
        st["heap_trend"] = self.heap
        print("@@END " + json.dumps(st))
        self.session.stop()
        for t in tasks:
            t.cancel()
        try:
            await self.asyncio.wait_for(run, 2)
        except Exception:
            pass
        self.store.close()


def board_main(path):
    import asyncio
    import json

    with open(path) as f:
        cfg = json.loads(f.read())
    asyncio.run(Board(cfg).main())


# ---------------------------------------------------------------------------------------
# The host side (CPython only): broker, proxy, collector, board process, verdict
# ---------------------------------------------------------------------------------------


def _root():
    from pathlib import Path

    return Path(__file__).resolve().parent.parent


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Child:
    """A child process we started (`self.proc`): stopped by PID, never left behind."""

    proc = None

    def kill(self):
        """SIGKILL: the process vanishes without a word (a crash, a power cut)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except Exception:
                self.proc.kill()
                self.proc.wait(5)


class Mosquitto(_Child):
    """A plain-TCP mosquitto on a free loopback port, stopped (or killed) by PID."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.proc = None
        self.port = None

    def start(self, attempts=3):
        import shutil
        import socket
        import subprocess
        import time

        binary = next(
            (p for p in ("/usr/sbin/mosquitto", "/usr/bin/mosquitto") if _exists(p)), None
        ) or shutil.which("mosquitto")
        if not binary:
            raise RuntimeError("mosquitto not found: apt-get install mosquitto")
        for _ in range(attempts):
            port = free_port()
            conf = self.workdir / ("mosquitto-%d.conf" % port)
            conf.write_text(
                "per_listener_settings false\npersistence false\n"
                "log_dest file %s\nlistener %d 127.0.0.1\nallow_anonymous true\n"
                % (self.workdir / ("mosquitto-%d.log" % port), port)
            )
            self.proc = subprocess.Popen(
                [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            deadline = time.monotonic() + 10
            while self.proc.poll() is None and time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                    self.port = port
                    return self
                except OSError:
                    time.sleep(0.05)
            self.stop()
        raise RuntimeError("mosquitto did not start")


def _exists(p):
    import os

    return os.path.exists(p)


class Collector:
    """A paho-mqtt subscriber on the broker side: records every value that arrives."""

    def __init__(self, port, topic):
        import threading

        self.port = port
        self.topic = topic
        self.values = []
        self.lock = threading.Lock()
        self.client = None

    def start(self, timeout=10):
        import threading

        import paho.mqtt.client as mqtt

        subscribed = threading.Event()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="collector-%d" % id(self))

        def on_connect(client, userdata, flags, rc, props=None):
            client.subscribe(self.topic, 1)

        def on_subscribe(client, userdata, mid, rcs, props=None):
            subscribed.set()

        def on_message(client, userdata, msg):
            with self.lock:
                self.values.append(int(msg.payload.split()[0]))

        c.on_connect = on_connect
        c.on_subscribe = on_subscribe
        c.on_message = on_message
        c.connect("127.0.0.1", self.port, 30)
        c.loop_start()
        if not subscribed.wait(timeout):
            c.loop_stop()
            raise TimeoutError("collector did not subscribe")
        self.client = c
        return self

    def publish(self, topic, payload):
        self.client.publish(topic, payload, 1).wait_for_publish(5)

    def stop(self):
        if self.client is not None:
            self.client.disconnect()
            self.client.loop_stop()
            self.client = None

    def snapshot(self):
        with self.lock:
            return list(self.values)


class BoardProcess(_Child):
    """The board on the MicroPython unix port (or CPython with interp="cpython").

    The unix port's GC heap is capped at `heapsize` (256 KB: the source of tools/soak.py and
    of tether is compiled on the board itself here, which a frozen firmware does not need;
    160 KB is not enough for that compilation)."""

    def __init__(self, workdir, cfg, interp="unix", heapsize="256k"):
        import json

        self.workdir = workdir
        self.cfg = dict(cfg)
        self.cfg.setdefault("control", str(workdir / "control"))
        self.cfg.setdefault("wifi_control", str(workdir / "wifi"))
        self.cfg_path = workdir / ("board-%d.json" % id(self))
        self.cfg_path.write_text(json.dumps(self.cfg))
        self.interp = interp
        self.heapsize = heapsize
        self.proc = None
        self.status = None
        self.statuses = 0
        self.produced_line = None
        self.end = None
        self.tail = []
        self._seq = 0
        self._cmds = []

    def start(self):
        import os
        import subprocess
        import threading

        root = _root()
        script = root / "tools" / "soak.py"
        env = dict(os.environ)
        if self.interp == "unix":
            sys.path.insert(0, str(root / "tests"))
            from mpy import micropython_cmd, micropython_env

            cmd = micropython_cmd(script, "board", self.cfg_path, heapsize=self.heapsize)
            env = micropython_env()
        else:
            cmd = [sys.executable, str(script), "board", str(self.cfg_path)]
            env["PYTHONPATH"] = str(root / "lib")
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self):
        import json

        for line in self.proc.stdout:
            line = line.rstrip("\n")
            if line.startswith("@@S "):
                self.status = json.loads(line[4:])
                self.statuses += 1
            elif line.startswith("@@PRODUCED "):
                self.produced_line = json.loads(line[11:])
            elif line.startswith("@@END "):
                self.end = json.loads(line[6:])
            else:
                self.tail.append(line)
                del self.tail[:-200]

    def wait(self, pred, timeout, what="condition"):
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.status
            if st is not None and pred(st):
                return st
            if self.proc.poll() is not None and self.end is None:
                break
            time.sleep(0.05)
        raise AssertionError(
            "board: %s not reached in %s s; last status %s\n%s"
            % (what, timeout, self.status, "\n".join(self.tail[-40:]))
        )

    def command(self, *words):
        import os

        self._seq += 1
        self._cmds.append("%d %s" % (self._seq, " ".join(str(w) for w in words)))
        tmp = self.cfg["control"] + ".tmp"
        with open(tmp, "w") as f:
            f.write("\n".join(self._cmds) + "\n")
        os.replace(tmp, self.cfg["control"])

    def wifi(self, up):
        import os

        tmp = self.cfg["wifi_control"] + ".tmp"
        with open(tmp, "w") as f:
            f.write("up" if up else "drop")
        os.replace(tmp, self.cfg["wifi_control"])

    def finish(self, timeout=60):
        """Stop producing, wait until the queue is empty, exit; returns the final status."""
        import time

        self.command("stop")
        self.wait(
            lambda s: not s["producing"] and s["depth"] == 0 and s["state"] == "ready",
            timeout,
            "queue drained",
        )
        self.command("exit")
        deadline = time.monotonic() + 10
        while self.end is None and time.monotonic() < deadline:
            time.sleep(0.05)
        self.stop()
        return self.end or self.status

    # kill() is a power cut: the store on disk is all that survives.

    def stop(self):
        super().stop()
        if getattr(self, "_reader", None) is not None:
            self._reader.join(5)


class Rig:
    """mosquitto <- fault proxy <- board; collector on the broker. Use as a context."""

    def __init__(self, workdir, interp="unix", **board_cfg):
        self.workdir = workdir
        self.interp = interp
        self.board_cfg = board_cfg
        self.broker = None
        self.proxy = None
        self.collector = None
        self.board = None
        self.brokers = []
        self.topic = "soak/values"

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc):
        self.close()

    def start(self):
        sys.path.insert(0, str(_root()))
        from tools.faultproxy import ProxyThread

        self.broker = Mosquitto(self.workdir).start()
        self.brokers.append(self.broker)
        self.proxy = ProxyThread("127.0.0.1", self.broker.port)
        self.proxy.start()
        self.collector = Collector(self.broker.port, self.topic).start()
        return self

    def start_board(self, **over):
        cfg = {
            "host": "127.0.0.1",
            "port": self.proxy.port,
            "client_id": "soak-board",
            "topic": self.topic,
            "cmd_topic": "soak/cmd",
            "store_dir": str(self.workdir / "store"),
            "keepalive": 2,
            "period_ms": 20,
            "count": 0,
            "backoff_min_ms": 200,
            "backoff_max_ms": 2000,
            "connect_timeout_ms": 3000,
            "sync_timeout_ms": 5000,
            "status_ms": 200,
            "run_s": 300,
        }
        cfg.update(self.board_cfg)
        cfg.update(over)
        self.board = BoardProcess(self.workdir, cfg, self.interp).start()
        return self.board

    def restart_broker(self, down_s=1.0):
        """Kill the broker (SIGKILL); start a new one after down_s; reconnects are refused
        until the collector is subscribed to it (so no value is published to nobody)."""
        import time

        self.proxy.refuse()
        self.broker.kill()
        self.proxy.drop()
        self.collector.stop()
        time.sleep(down_s)
        self.broker = Mosquitto(self.workdir).start()
        self.brokers.append(self.broker)
        old = self.collector
        self.collector = Collector(self.broker.port, self.topic).start()
        self.collector.values = old.snapshot()
        self.proxy.set_target("127.0.0.1", self.broker.port)
        self.proxy.resume()

    def wait_delivered(self, n, timeout):
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(set(self.collector.snapshot())) >= n:
                return True
            time.sleep(0.05)
        return False

    def verdict(self, first=1, last=None, wait_s=10):
        """Values first..last (the board's last produced by default) against arrivals.

        The broker acknowledges a PUBACK before its copy reaches the collector: missing
        values are waited for up to wait_s before they count as lost."""
        import time

        if last is None:
            last = self.board.end["last"] if self.board.end else self.board.status["last"]
        want = set(range(first, (last or 0) + 1))
        deadline = time.monotonic() + wait_s
        while True:
            got = self.collector.snapshot()
            seen = set(got)
            if want <= seen or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        lost = sorted(want - seen)
        return {
            "produced": len(want),
            "delivered": len(want & seen),
            "lost": len(lost),
            "lost_values": lost[:20],
            "duplicates": len(got) - len(seen),
            "unexpected": sorted(seen - want)[:20],
        }

    def close(self):
        for step in (
            lambda: self.board and self.board.stop(),
            lambda: self.collector and self.collector.stop(),
            lambda: self.proxy and self.proxy.stop(),
        ):
            try:
                step()
            except Exception:
                pass
        for b in self.brokers:
            try:
                b.stop()
            except Exception:
                pass


# ---------------------------------------------------------------------------------------
# The soak run
# ---------------------------------------------------------------------------------------

FAULTS = (
    "drop",
    "cut",
    "blackhole",
    "refuse",
    "delay",
    "wifi",
    "broker",
    "malformed",
    "clock",
)


def inject(rig, fault, rnd, log):
    """One fault, chosen by name; returns when it is over (the board recovers after)."""
    import time

    b = rig.board
    ka = rig.board.cfg["keepalive"]
    if fault == "drop":
        log("drop every connection")
        rig.proxy.drop()
    elif fault == "cut":
        n = rnd.randint(20, 200)
        log("cut the next connection after %d bytes" % n)
        rig.proxy.cut_after(n)
        rig.proxy.drop()
        time.sleep(2)
        rig.proxy.cut_after(None)
    elif fault == "blackhole":
        s = ka * 1.5 + rnd.uniform(1, 4)
        log("black hole for %.1f s (keepalive %d s)" % (s, ka))
        rig.proxy.blackhole()
        time.sleep(s)
        rig.proxy.resume()
    elif fault == "refuse":
        s = rnd.uniform(1, 6)
        log("refuse connections for %.1f s" % s)
        rig.proxy.refuse()
        rig.proxy.drop()
        time.sleep(s)
        rig.proxy.resume()
    elif fault == "delay":
        ms = rnd.randint(50, 400)
        log("delay %d ms for 4 s" % ms)
        rig.proxy.delay(ms)
        time.sleep(4)
        rig.proxy.delay(0)
    elif fault == "wifi":
        s = rnd.uniform(0.5, 4)
        log("WiFi down for %.1f s" % s)
        b.wifi(False)
        time.sleep(s)
        b.wifi(True)
    elif fault == "broker":
        s = rnd.uniform(0.5, 3)
        log("broker killed, back after %.1f s" % s)
        rig.restart_broker(s)
    elif fault == "malformed":
        log("malformed and oversize messages to the board")
        for payload in (b"\xff\xff", b"\x9f", b"", b"\x1b" + b"\x00" * 3, b"x" * 5000):
            rig.collector.publish(rig.board.cfg["cmd_topic"], payload)
    elif fault == "clock":
        d = rnd.choice((-86400 * 30, -3600, 3600, 86400 * 365))
        log("clock jumps %+d s" % d)
        b.command("clock", d)


def soak(seconds, seed, workdir, interp="unix", out=print):
    import random
    import time

    rnd = random.Random(seed)
    t0 = time.monotonic()

    def log(text):
        out("[%7.1f s] %s" % (time.monotonic() - t0, text))

    counts = {}
    with Rig(workdir, interp) as rig:
        b = rig.start_board(heap_every_s=10, run_s=seconds + 300, status_ms=500)
        b.wait(lambda s: s["state"] == "ready", 30, "first connection")
        log("board ready")
        while time.monotonic() - t0 < seconds:
            time.sleep(rnd.uniform(3, 10))
            if time.monotonic() - t0 >= seconds:
                break
            fault = rnd.choice(FAULTS)
            counts[fault] = counts.get(fault, 0) + 1
            inject(rig, fault, rnd, log)
            st = b.status or {}
            log(
                "  produced %s depth %s reconnects %s stall %s ms"
                % (st.get("produced"), st.get("depth"), st.get("reconnects"), st.get("stall_ms"))
            )
        log("faults over: draining")
        end = b.finish(120)
        v = rig.verdict()
    heap = end.get("heap_trend") or []
    report = {
        "seconds": round(time.monotonic() - t0),
        "seed": seed,
        "interpreter": interp,
        "faults": counts,
        "values_produced": v["produced"],
        "delivered": v["delivered"],
        "lost": v["lost"],
        "duplicates": v["duplicates"],
        "reconnects": end["reconnects"],
        "connect_attempts": end["attempts"],
        "failures_by_stage": end["failures_by_stage"],
        "link_drops": end["link_drops"],
        "bad_messages": end["bad_messages"],
        "store_dropped": end["dropped"],
        "longest_loop_stall_ms": end["stall_ms"],
        "stall_by_phase_ms": end["stall_by_phase"],
        "stall_events_over_50ms": end["stall_events"],
        # After gc.collect() every 10 s: what the board really keeps alive.
        "heap_free_min": min([h for _, h in heap]) if heap else None,
        # Sampled between collections (garbage included): the GC's high-water mark.
        "heap_free_min_uncollected": end["heap_min"],
        "heap_free_first_last": [heap[0][1], heap[-1][1]] if heap else None,
        "heap_trend": heap,
    }
    return report


def main(argv=None):
    import argparse
    import json
    import os
    import tempfile
    from pathlib import Path

    ap = argparse.ArgumentParser(description="Soak: random faults, then count every value")
    ap.add_argument(
        "--seconds", type=int, default=int(os.environ.get("SOAK_SECONDS", "600") or 600)
    )
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--interp", choices=("unix", "cpython"), default="unix")
    args = ap.parse_args(argv)
    # Stopped from outside (a CI timeout, kill PID, Ctrl-C even when started in the
    # background): unwind so the board, the broker and the proxy are stopped too.
    import signal

    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(2), "big")
    with tempfile.TemporaryDirectory(prefix="soak-") as d:
        report = soak(args.seconds, seed, Path(d), args.interp)
    print("SOAK REPORT")
    print(json.dumps(report, indent=1, sort_keys=True))
    return 0 if report["lost"] == 0 and report["values_produced"] > 0 else 1


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "board":
        board_main(sys.argv[2])
    else:
        sys.exit(main())
