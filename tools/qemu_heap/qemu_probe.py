"""Where the heap goes on the frozen image: module by module, then step by step through the
scenario (tools/qemu_heap.py --probe). A development aid; prints `QH <name> <bytes>` lines."""

import gc
import sys

import qemu_scenario as s


def _heap():
    gc.collect()
    return gc.mem_alloc()


def mods(names):
    """Heap each module adds, imported in this order, then the modules left loaded."""
    for name in names.split():
        before = _heap()
        __import__(name)
        s.out("mod_" + name, _heap() - before)
    s.out("loaded", " ".join(sorted(k for k in sys.modules if k.startswith("tether"))))
    s.out("end", 1)


def objs():
    """Heap of one instance of each runtime object the scenario keeps."""
    import asyncio

    h = _heap()

    def step(name):
        nonlocal h
        n = _heap()
        s.out("obj_" + name, n - h)
        h = n

    import tether.cloud.connect  # noqa: F401
    from tether.arduino import apply, protocol  # noqa: F401
    from tether.arduino.client import ArduinoCloudClient  # noqa: F401
    from tether.arduino.records import CloudObject
    from tether.cloud.client import CloudClient
    from tether.cloud.router import Router
    from tether.cloud.scheduler import Scheduler
    from tether.mqtt import MQTTClient
    from tether.session import Session

    step("imports")
    keep = []
    keep.append(Router(8))
    step("Router")
    keep.append(Scheduler(None))
    step("Scheduler")
    keep.append(Session(None, None))
    step("Session")
    keep.append(asyncio.Event())
    step("Event")

    async def nop():
        await asyncio.sleep_ms(100000)

    async def go():
        keep.append(asyncio.create_task(nop()))
        step("task")

    asyncio.run(go())
    keep.append(bytearray(4096))
    step("buf4096")
    keep.append(MQTTClient("x", "y", max_packet=64))
    step("MQTTClient_64")

    def f(c, v):
        pass

    for i in range(10):
        keep.append(CloudObject("v%d" % i, value=i, on_write=f))
    step("10_CloudObjects")

    class C(ArduinoCloudClient):
        pass

    step("subclass")
    c = C("3a1c5e1e-7d1b-4c2e-9f00-7e57e7e57001", "u", "p", server="s", port=1)
    step("ArduinoCloudClient")
    keep.append(c)
    keep.append(CloudClient("x", "y", 1))
    step("CloudClient")
    s.out("end", 1)


def connected():
    """Run the scenario to "connected", then free parts one by one: what each held."""
    import asyncio
    import time

    from tether.arduino import ArduinoCloudClient

    class Client(ArduinoCloudClient):
        def tls_context(self):
            return None

    cloud = s.Cloud()
    client = Client(s.DEV, s.DEV, "secret", server="broker.local", port=1883)
    client.open_connection = cloud.open_connection
    client.time_synced = True
    for i in range(s.NVARS):
        client.register("v%d" % i, value=i, on_write=lambda c, v: None)

    async def go():
        task = asyncio.create_task(client.run())
        deadline = time.ticks_add(time.ticks_ms(), 5000)
        while not (client.connected and client.counters["pushes"] >= 1):
            if time.ticks_diff(deadline, time.ticks_ms()) <= 0:
                break
            await asyncio.sleep_ms(5)
        s.out("connected", _heap())
        s.out("loaded", " ".join(sorted(k for k in sys.modules if k.startswith("tether"))))
        tasks = []
        for t in (task, client._timer, client._disp, client.session._round):
            tasks.append(t)
        m = client.mqtt
        tasks.append(m._reader_task)
        tasks.append(m._tick_task)
        s.out("ntasks", len(tasks))
        h = _heap()
        for name in ("_buf", "_mv", "_tx", "_txmv", "stats", "_inflight", "_pending"):
            setattr(m, name, None)
            n = _heap()
            s.out("mqtt." + name, h - n)
            h = n
        for name in ("counters", "records", "_d_ei", "_d_dw", "_d_up", "_t", "router"):
            setattr(client, name, None)
            n = _heap()
            s.out("client." + name, h - n)
            h = n
        d = client.__dict__
        s.out("client_attrs", len(d))
        s.out("session_attrs", len(client.session.__dict__))
        s.out("mqtt_attrs", len(m.__dict__))
        client.session.stop()
        for t in tasks:
            if t is not None:
                t.cancel()
        await asyncio.sleep_ms(50)
        del tasks, task, t
        n = _heap()
        s.out("tasks_and_rest", h - n)

    asyncio.run(go())
    s.out("end", 1)


def why(pool):
    """The scenario with tracebacks of failed rounds (log level DEBUG)."""
    from tether import log

    log.setLevel(log.DEBUG)
    s.main(pool)


def peak(pool=0, timeline=False):
    """The scenario with a task that samples the live heap (after a collect) at every
    scheduling turn: the largest sample and what the client was doing then."""
    import asyncio

    from tether.cloud.client import CloudClient

    top = [0, ""]
    trace = [(0, "")] if timeline else None
    orig = CloudClient._begin

    async def sampler(client):
        while True:
            h = _heap()
            if h > top[0]:
                top[0] = h
                top[1] = _label(client)
            if trace is not None and len(trace) < 60 and abs(h - trace[-1][0]) >= 64:
                trace.append((h, top[1] if h == top[0] else _label(client)))
            await asyncio.sleep_ms(0)

    async def begin(self):
        asyncio.create_task(sampler(self))
        await orig(self)

    out = s.out

    def report(name, value):
        if name == "result":  # before main() says "end"
            out("peak", top[0])
            out("peak_at", top[1])
            for h, what in trace or ():
                out("t", "%d %s" % (h, what))
        out(name, value)

    from tether.arduino import protocol

    dec = protocol.raw_pack

    def raw_pack(payload):
        # The decoded pack is alive here: the peak inside a handler.
        h0 = _heap()
        pack = dec(payload)
        h = _heap()
        if len(pack) > 1:
            s.out("raw_pack", "%d maps: %d B, heap before %d" % (len(pack), h - h0, h0))
        if h > top[0]:
            top[0] = h
            top[1] = "raw_pack of %d maps" % len(pack)
        return pack

    protocol.raw_pack = raw_pack
    CloudClient._begin = begin
    s.out = report
    s.main(pool)


def _label(client):
    c = client.counters
    return "%s/%s lv=%d w=%d p=%d q=%d" % (
        client.session.state,
        client.session.stage,
        c.get("last_values", 0),
        c.get("writes", 0),
        c.get("pushes", 0),
        len(client.router._q),
    )


def steps():
    """The live heap at every scheduling turn up to the first acknowledged push, recorded
    into a preallocated array (the record itself allocates nothing): where connecting and
    syncing allocate, phase by phase."""
    import array
    import asyncio

    from tether.cloud.client import CloudClient

    n = 400
    hs = array.array("i", bytes(4 * n))
    cs = array.array("i", bytes(4 * n))
    k = [0]
    states = ("idle", "stages", "connecting", "syncing", "ready", "backoff", "stopped")
    orig = CloudClient._begin

    def code(c):
        ses = c.session
        m = c.mqtt
        return (
            states.index(ses.state) * 10000
            + (0 if m is None else 1000 if not m.connected else 2000)
            + len(c.router._exact) * 100
            + (10 if c.thing_id else 0)
            + c.counters.get("last_values", 0)
            + (5 if c.counters.get("pushes", 0) else 0)
        )

    async def sampler(client):
        while k[0] < n and not client.counters.get("pushes", 0):
            h = _heap()
            c = code(client)
            i = k[0]
            if not i or hs[i - 1] != h or cs[i - 1] != c:
                hs[i] = h
                cs[i] = c
                k[0] = i + 1
            await asyncio.sleep_ms(0)

    async def begin(self):
        asyncio.create_task(sampler(self))
        await orig(self)

    out = s.out

    def report(name, value):
        if name == "result":
            for i in range(k[0]):
                out("s", "%6d %05d" % (hs[i], cs[i]))
        out(name, value)

    CloudClient._begin = begin
    s.out = report
    s.main(0)
