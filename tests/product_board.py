"""A board for the product fault tests: ArduinoCloudClient with store-and-forward.

    micropython tests/product_board.py CONFIG.json       (or CPython, with lib/ on the path)

It runs the product client (tether.arduino.ArduinoCloudClient) through its public API
against the cloud emulator (tools/cloudsim), usually through tools/faultproxy.py, with a
fake WiFi stage first and a fake clock. Every `period_ms` it produces the next number n and
writes it to variable `v{n % nvars}` (`client[name] = n`): a state client keeps only the
latest value of a variable, so spreading the numbers over nvars variables makes every
number a value of its own that must reach the cloud, unless the variable still held an
unacknowledged number when the next one replaced it (`obj.updated`, the original client's
flag). Those replaced numbers are listed (`superseded`): tests/test_faults_product.py
expects every other number in the cloud's history.

Status: one line `@@S {json}` every status_ms; `@@END {json}` (with `superseded`) at the
end. Control file: lines `SEQ clock DELTA_S` (step the wall clock), `SEQ stop` (stop
producing), `SEQ exit`. WiFi control file: `drop` / `up` (tether.hal.fakes.FakeRadio); a
link watcher drops the connection when the link goes, as the firmware does.

Only public API: the arduino-iot-cloud-py constructor, register() and `client[name] = v`,
run(), stop(), `connected`, `counters`, `stats()`, and the cloud base's seams the firmware
uses (`store=`, `add_stage(..., first=True)`, `drop()`; docs/architecture.md).
"""

import asyncio
import gc
import json
import sys

from tether import log
from tether.arduino import ArduinoCloudClient
from tether.compat import ticks_diff, ticks_ms
from tether.hal import clock
from tether.hal.fakes import FakeClock, FakeNetwork, FakeRadio
from tether.hal.network import get_network
from tether.stallmeter import StallMeter
from tether.store import Store


def make_client(cfg, store):
    class Client(ArduinoCloudClient):
        # Recover within a test's seconds (the defaults are 1 s .. 32 s).
        BACKOFF_MIN_MS = cfg.get("backoff_min_ms", 200)
        BACKOFF_MAX_MS = cfg.get("backoff_max_ms", 1000)
        DISCOVERY_FIRST_MS = 500

    args = (cfg["device_id"], cfg["device_id"], cfg["password"])
    kw = {
        "ssl_params": {"cafile": cfg["ca"]},
        "server": cfg.get("server", "localhost"),
        "port": cfg["port"],
        "keepalive": cfg.get("keepalive", 2),
    }
    return Client(*args, store=store, **kw)


class Board:
    def __init__(self, cfg):
        log.basicConfig(level=cfg.get("log_level", log.WARNING))
        self.cfg = cfg
        self.clock = FakeClock(1970, unix_s=cfg.get("unix_s", 1795000000))
        clock.set_clock(self.clock)
        radio = FakeRadio(control=cfg.get("wifi_control"), assoc_ms=50)
        self.station = get_network("fake", network_module=FakeNetwork("cyw43", radio))
        self.store = Store(cfg["store_dir"])
        self.client = make_client(cfg, self.store)
        self.client.add_stage("wifi", self.wifi_stage, 3000, first=True)
        self.vars = []
        for i in range(cfg.get("nvars", 60)):
            self.vars.append(self.client.register("v%d" % i, value=0))
        # A read-write variable the dashboard writes (cloud -> device).
        self.cmd = 0
        self.client.register("cmd", value=0, on_write=self.on_cmd)
        self.n = 0
        self.produced = 0
        self.producing = True
        self.superseded = []
        self.wifi_failures = 0
        self.clock_jumps = 0
        self.done = False
        self.meter = StallMeter(2, phase_fn=self.phase)

    def on_cmd(self, client, value):
        self.cmd = value

    def phase(self):
        return "ready" if self.client.connected else "offline"

    async def wifi_stage(self):
        if self.station.isconnected():
            return
        try:
            await self.station.connect("fault-ap", "fault-key", 2000)
        except OSError:
            self.wifi_failures += 1
            raise

    async def link_watch(self):
        from tether.hal.network import watch_link

        # The TCP connection cannot outlive the WiFi link: drop it when the link goes, as
        # the firmware does.
        await watch_link(self.station, self.client.drop, 100)

    async def producer(self):
        try:
            await self._produce()
        except Exception as exc:  # a dead producer would look like a stuck client
            print("producer failed: %r" % (exc,))
            raise

    async def _produce(self):
        period = self.cfg.get("period_ms", 100) / 1000
        while self.producing:
            self.n += 1
            name = "v%d" % (self.n % len(self.vars))
            obj = self.vars[self.n % len(self.vars)]
            if obj.updated:  # its number never got a PUBACK; the state client replaces it
                self.superseded.append(obj.value)
            self.client[name] = self.n
            self.produced += 1
            await asyncio.sleep(period)

    async def control(self):
        path = self.cfg.get("control")
        done = 0
        while path:
            await asyncio.sleep(0.1)
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
                if words[1] == "clock":
                    self.clock.set_unix(clock.unix_time() + int(words[2]))
                    self.clock_jumps += 1
                elif words[1] == "stop":
                    self.producing = False
                elif words[1] == "exit":
                    self.done = True

    def pending(self):
        n = 0
        for obj in self.vars:
            if obj.updated:
                n += 1
        return n

    def status(self):
        c = self.client
        st = c.stats()
        return {
            "produced": self.produced,
            "last": self.n,
            "producing": self.producing,
            "depth": self.pending(),  # variables whose latest number is not acknowledged
            "state": "ready" if c.connected else "offline",
            "connected": c.connected,
            "reconnects": c.counters["reconnects"],
            "pushes": c.counters["pushes"],
            "bad_messages": c.counters["bad_messages"],
            "connect_failures": st.get("connect_failures"),
            "oversize_dropped": st.get("mqtt_oversize_dropped", 0),
            "store_depth": self.store.depth,
            "superseded": len(self.superseded),
            "cmd": self.cmd,
            "wifi_failures": self.wifi_failures,
            "clock_jumps": self.clock_jumps,
            "unix": clock.unix_time(),
            "stall_ms": self.meter.longest_ms,
            "stall_by_phase": self.meter.by_phase,
            "heap_free": gc.mem_free() if hasattr(gc, "mem_free") else None,
        }

    async def reporter(self):
        every = self.cfg.get("status_ms", 200) / 1000
        while True:
            await asyncio.sleep(every)
            print("@@S " + json.dumps(self.status()))

    async def main(self):
        self.meter.start()
        run = asyncio.create_task(self.client.run())
        tasks = [
            asyncio.create_task(f())
            for f in (self.producer, self.control, self.reporter, self.link_watch)
        ]
        t0 = ticks_ms()
        limit = self.cfg.get("run_s", 120) * 1000
        while not self.done and ticks_diff(ticks_ms(), t0) < limit:
            await asyncio.sleep(0.05)
        end = self.status()
        end["superseded_values"] = self.superseded
        end["values"] = [obj.value for obj in self.vars]
        print("@@END " + json.dumps(end))
        self.client.stop()
        for t in tasks:
            t.cancel()
        try:
            await asyncio.wait_for(run, 2)
        except Exception:
            pass
        self.store.close()


def main(path):
    with open(path) as f:
        cfg = json.loads(f.read())
    asyncio.run(Board(cfg).main())


if __name__ == "__main__":
    main(sys.argv[1])
