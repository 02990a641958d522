# The device side of `make bench`: tether.arduino on the MicroPython unix port, driven by
# bench/run.py through the cloud emulator (tools/cloudsim). One argument, a JSON file:
#
#   {"mode": "import" | "scenario" | "full", "server", "port", "tls", "ca", "device_id", "secret",
#    "nvars", "writes", "pushes", "timeout_s"}
#
# Every figure goes to stdout as one line `BENCH <name> <json>`; times are time.time_ns()
# (the host's wall clock, the same clock the orchestrator and the emulator use).
#
# import: report the heap before and after importing the library, and exit.
# scenario: register `nvars` variables, connect, discover, take `writes` cloud writes and
#   make `pushes` local changes, then report the heap and exit 0 (1 on timeout, 2 when a
#   connection attempt failed). It is what the -X heapsize search runs.
# full: the same start, then serve commands written by the orchestrator to the "ctl"
#   variable: write round trips ("echo_in" -> on_write -> "echo_out"), local changes,
#   a burst of incoming writes under the stall meter, on_read throughput, quit.

import gc
import sys

gc.collect()
_BASE = gc.mem_alloc()


def _import_costs(names):
    # Heap each module adds, imported one after the other (a package's __init__ and what
    # it pulls in count for the first module that needs them). Runs before anything else.
    out = []
    for name in names:
        gc.collect()
        before = gc.mem_alloc()
        __import__(name)
        gc.collect()
        out.append([name, gc.mem_alloc() - before])
    print("BENCH modules " + repr(out).replace("'", '"'))
    sys.exit(0)


if sys.argv[1:2] == ["--modules"]:
    _import_costs(sys.argv[2:])

import asyncio  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

from tether.arduino import ArduinoCloudClient  # noqa: E402
from tether.mqtt import MQTTClient  # noqa: E402, F401  (imported now: part of "after import")
from tether.stallmeter import StallMeter  # noqa: E402

gc.collect()
_IMPORTED = gc.mem_alloc()


def emit(name, value):
    print("BENCH " + name + " " + json.dumps(value))


def now_ns():
    return time.time_ns()


def heap():
    gc.collect()
    return gc.mem_alloc()


CLIENT = []  # the client, for a last report when a run fails


class BenchClient(ArduinoCloudClient):
    """Timestamps for connected / discovery done; plain TCP when tls is off."""

    plain = False
    meter = None

    def _tls_context(self):
        if self.plain:
            return None
        return ArduinoCloudClient._tls_context(self)

    async def _connect(self):
        t0 = now_ns()
        mqtt = await ArduinoCloudClient._connect(self)
        emit("connected", [t0, now_ns()])
        return mqtt

    async def _attach(self, mqtt, thing):
        await ArduinoCloudClient._attach(self, mqtt, thing)
        emit("ready", now_ns())
        if self.meter is not None:
            self.meter.phase(None)


def make_client(cfg):
    ssl_params = {}
    if cfg["tls"]:
        with open(cfg["ca"], "rb") as f:
            ssl_params["cadata"] = f.read()
        ssl_params["server_hostname"] = "localhost"
    c = BenchClient(
        cfg["device_id"],
        username=cfg["device_id"],
        password=cfg["secret"],
        ssl_params=ssl_params,
        server=cfg["server"],
        port=cfg["port"],
        keepalive=30,
    )
    c.plain = not cfg["tls"]
    CLIENT.append(c)
    return c


async def wait_until(pred, timeout_s, client=None):
    deadline = time.ticks_add(time.ticks_ms(), int(timeout_s * 1000))
    while not pred():
        if client is not None and client.session.failures:
            return 2
        if time.ticks_diff(deadline, time.ticks_ms()) <= 0:
            return 1
        await asyncio.sleep_ms(2)
    return 0


async def scenario(cfg):
    client = make_client(cfg)
    n = cfg["nvars"]
    got = [0]

    def on_write(cl, value):
        got[0] += 1

    client.register("v0", value=0, on_write=on_write)
    for i in range(1, n):
        client.register("v%d" % i, value=i)
    runner = asyncio.create_task(client.run())
    rc = await wait_until(
        lambda: client.connected and client.counters["pushes"], cfg["timeout_s"], client
    )
    if rc:
        return rc
    emit("heap_connected", heap())
    # First the cloud's writes (the orchestrator sends them on "ready"), then our pushes:
    # a cloud write to a variable whose own change is still unsent would win over it.
    rc = await wait_until(lambda: got[0] >= cfg["writes"], cfg["timeout_s"], client)
    if rc:
        return rc
    for k in range(cfg["pushes"]):
        base = client.counters["pushes"]
        name = "v%d" % (k % n)
        client[name] = client[name] + 1000
        rc = await wait_until(
            lambda b=base: client.counters["pushes"] > b, cfg["timeout_s"], client
        )
        if rc:
            return rc
    emit("heap_steady", heap())
    emit("counters", client.stats())
    client.stop()
    runner.cancel()
    return 0


class Full:
    def __init__(self, cfg, client, meter):
        self.cfg = cfg
        self.client = client
        self.meter = meter
        self.sunk = 0
        self.todo = []
        self.wake = asyncio.Event()

    def on_ctl(self, client, value):
        if value:
            self.todo.append(value)
            self.wake.set()

    def on_echo(self, client, value):
        client["echo_out"] = value

    def on_sink(self, client, value):
        self.sunk += 1

    async def serve(self):
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.todo:
                cmd = self.todo.pop(0).split()[1:]  # "<seq> <command> <args>"
                if cmd[0] == "quit":
                    return
                await getattr(self, "do_" + cmd[0])(*[int(a) for a in cmd[1:]])

    async def do_local(self, count):
        # A local change until the emulator has it: the emulator stamps each arrival.
        c = self.client
        stamps = []
        acks = []
        for k in range(1, count + 1):
            pushes = c.counters["pushes"]
            stamps.append(now_ns())
            c["local"] = k
            while c.counters["pushes"] == pushes:
                await asyncio.sleep_ms(0)
            acks.append(now_ns())
            await asyncio.sleep_ms(5)
        emit("local", stamps)
        emit("local_acked", acks)

    async def do_burst(self, count):
        # The orchestrator sends `count` writes to "sink" once it sees this line.
        self.sunk = 0
        self.meter.reset()
        self.meter.start()
        self.meter.phase("burst")
        emit("burst_armed", now_ns())
        # Until all arrived, or nothing new for 5 s (the emulator's broker lost one).
        seen = -1
        while self.sunk < count and self.sunk != seen:
            seen = self.sunk
            await wait_until(lambda: self.sunk >= count, 5)
        self.meter.phase(None)
        self.meter.stop()
        emit("burst", {"received": self.sunk, "stall_ms": self.meter.by_phase["burst"]})

    async def do_tput(self, vars_, ms):
        # on_read changes each variable every millisecond; pushes carry what changed.
        c = self.client
        tick = [0]

        def reader(client):
            tick[0] += 1
            return tick[0]

        objs = []
        for i in range(vars_):
            objs.append(c.register("t%d" % i, value=0, on_read=reader, interval=0.001))
        pushes = c.counters["pushes"]
        t0 = now_ns()
        await asyncio.sleep_ms(ms)
        for o in objs:
            c.scheduler.remove(o)
        t1 = now_ns()
        emit(
            "tput", {"t0": t0, "t1": t1, "reads": tick[0], "pushes": c.counters["pushes"] - pushes}
        )


async def full(cfg):
    meter = StallMeter(period_ms=2)
    meter.start()
    meter.phase("connect")
    client = make_client(cfg)
    client.meter = meter
    f = Full(cfg, client, meter)
    client.register("ctl", value="", on_write=f.on_ctl)
    client.register("echo_in", value=0, on_write=f.on_echo)
    client.register("echo_out", value=0)
    client.register("local", value=0)
    client.register("sink", value=0, on_write=f.on_sink)
    client.register("first", value=1)
    runner = asyncio.create_task(client.run())
    rc = await wait_until(lambda: client.connected, cfg["timeout_s"], client)
    if rc:
        return rc
    emit("stall_connect_ms", meter.by_phase["connect"])
    # The meter wakes every 2 ms: it runs only while a stall is being measured, so that
    # it does not weigh on the latency and throughput figures.
    meter.stop()
    await f.serve()
    emit("counters", client.stats())
    client.stop()
    runner.cancel()
    meter.stop()
    return 0


def main():
    with open(sys.argv[1]) as f:
        cfg = json.load(f)
    emit("start", now_ns())
    emit("heap_base", _BASE)
    emit("heap_import", _IMPORTED)
    if cfg["mode"] == "import":
        return
    coro = scenario(cfg) if cfg["mode"] == "scenario" else full(cfg)
    rc = asyncio.run(coro)
    emit("exit", rc)
    if rc and CLIENT:
        emit("counters", CLIENT[0].stats())  # why it did not finish
    sys.exit(rc)


main()
