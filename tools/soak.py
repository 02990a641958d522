"""Soak run and fault rig: a simulated board publishing QoS 1 values through the fault
proxy to mosquitto while faults are injected, and the bookkeeping that proves none is lost.

    make soak                       # SOAK_SECONDS=600 by default
    python -m tools.soak --seconds 300 --seed 7

This file is the board; the host side lives in four CPython modules next to it:

* `micropython tools/soak.py board CONFIG.json` is the board (MicroPython subset, runs on
  the unix port and CPython): WiFi (the fake radio) -> time -> DNS -> TCP -> MQTT through
  tether.session, a producer that appends numbered values to a tether.store queue, the
  store forwarded with QoS 1 (acked only after PUBACK), a link watcher, a stall meter, a
  control file (clock jumps, stop) and one status line (`@@S {json}`) every status_ms.
* tools/soak_procs.py: the child processes (mosquitto, the board, the paho-mqtt collector
  subscribed on the broker side), each stopped by PID.
* tools/soak_rig.py: `Rig` (used by tests/test_faults_*.py and by the soak run) wires
  mosquitto, a tools.faultproxy.ProxyThread in front of it, the collector and the board;
  `Rig.verdict()` compares the values the board produced with the values that arrived:
  lost (must be 0) and duplicates.
* tools/soak_faults.py: the faults one by one; tools/soak_run.py: the run (random faults
  for N seconds, drain, report) and its command line.

Delivery is at least once: a value whose PUBACK was lost is sent again after the
reconnect, so duplicates are expected and counted; a loss is a failure.

Every host-side name stays importable from here (`from tools.soak import Rig`).
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


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "board":
        board_main(sys.argv[2])
    else:
        # `python tools/soak.py ...` as well as `python -m tools.soak ...`: the host modules
        # are imported as the tools package, so its parent must be on the path.
        import os

        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        from tools.soak_run import main

        sys.exit(main())
else:
    # Imported as tools.soak (CPython only: the board runs this file as a script, so the
    # unix port never compiles or imports the host side).
    from tools.soak_faults import FAULTS, inject  # noqa: F401
    from tools.soak_procs import (  # noqa: F401
        BoardProcess,
        Collector,
        Mosquitto,
        free_port,
    )
    from tools.soak_rig import Rig  # noqa: F401
    from tools.soak_run import main, soak  # noqa: F401
