"""The same heap scenario for arduino-iot-cloud-py 1.4.1 (the client Tether replaces), to
check that the target figure of issue 10 compares like with like. Frozen only into the
`--peer` image of tools/qemu_heap.py, with the peer and its dependencies (senml, cbor2,
logging from micropython-lib).

    import qemu_peer; qemu_peer.main(pool)

The peer speaks MQTT over a blocking socket (its own umqtt) with TLS always wrapped: this
module puts socket, select, ssl and time (with time(), time_ns()) stand-ins into sys.modules before
importing it, the socket backed by qemu_scenario's in-memory cloud (legacy discovery: the
thing id on the device topic at SUBSCRIBE). The peer handles one incoming message per
second (its mqtt task's interval), so a run takes ~25 s of emulated time.
"""

import asyncio
import sys
import time

import qemu_scenario as qs


class _Sock:
    # A connected blocking socket on the cloud's in-memory stream.
    def __init__(self, cloud):
        self.c = cloud

    def settimeout(self, t):
        pass

    def setblocking(self, b):
        pass

    def connect(self, addr):
        self.c.inbox = bytearray()
        self.c.pos = 0
        self.c.rx = bytearray()
        self.c.closed = False

    def read(self, n):
        c = self.c
        k = min(n, len(c.inbox) - c.pos)
        if k <= 0:
            return b""
        data = bytes(memoryview(c.inbox)[c.pos : c.pos + k])
        c.pos += k
        if c.pos >= len(c.inbox):
            c.inbox[:] = b""
            c.pos = 0
        return data

    def write(self, data):
        self.c.write(data)
        return len(data)

    def close(self):
        self.c.closed = True

    def pending(self):
        return self.c.pos < len(self.c.inbox)


class _Module:
    pass


class _Context:
    # ssl.SSLContext without TLS: the port has none, and the scenario uses none.
    verify_mode = 0

    def __init__(self, protocol):
        pass

    def wrap_socket(self, sock, server_hostname=None):
        return sock


def _install(cloud):
    sock = _Sock(cloud)
    socket = _Module()
    socket.getaddrinfo = lambda host, port, *a: [(2, 1, 0, "", (host, port))]
    socket.socket = lambda *a: sock
    select = _Module()
    select.select = lambda r, w, x, t=None: ([s for s in r if s.pending()], [], [])
    ssl = _Module()
    ssl.CERT_NONE, ssl.CERT_REQUIRED, ssl.PROTOCOL_TLS_CLIENT = 0, 2, 16
    ssl.SSLContext = _Context
    sys.modules["socket"] = socket
    sys.modules["select"] = select
    sys.modules["ssl"] = ssl
    # The qemu port's time has ticks but no time(), which the peer calls for its pings.
    t = _Module()
    for name in dir(time):
        if not name.startswith("__"):
            setattr(t, name, getattr(time, name))
    t.time = lambda: 1700000000 + time.ticks_ms() // 1000
    t.time_ns = lambda: (1700000000000 + time.ticks_ms()) * 1000000
    sys.modules["time"] = t


async def _scenario(client, writes):
    deadline = time.ticks_add(time.ticks_ms(), 120000)
    task = asyncio.create_task(client.run(1.0, 1.2))

    async def wait(pred):
        while not pred():
            if time.ticks_diff(deadline, time.ticks_ms()) <= 0:
                return "timeout"
            await asyncio.sleep_ms(5)
        return None

    v9 = []
    why = await wait(lambda: client.thing_id is not None and "v9" in client.records)
    if why is None:
        v9.append(client.records["v9"])
        why = await wait(lambda: not v9[0].updated)
    if why is None:
        qs.out("heap_connected", qs.heap())
        why = await wait(lambda: writes[0] >= qs.WRITES and not v9[0].updated)
    if why is None:
        qs.out("heap_done", qs.heap())
    task.cancel()
    return why


def main(pool=0):
    import asyncio  # noqa: F401  (asyncio imports the real select before the stand-in)

    block, got = qs._hold(pool)
    qs.out("pool", got)
    why = None
    try:
        cloud = qs.Cloud()
        cloud.legacy = True
        _install(cloud)
        qs.out("heap_base", qs.heap())
        from arduino_iot_cloud import ArduinoCloudClient

        qs.out("heap_import", qs.heap())
        client = ArduinoCloudClient(qs.DEV, qs.DEV, "secret", server="broker.local", port=1883)
        writes = [0]

        def on_write(c, value):
            writes[0] += 1
            c["v9"] = value

        for i in range(qs.NVARS - 1):
            client.register("v%d" % i, value=i, on_write=on_write)
        client.register("v9", value=qs.NVARS - 1)
        qs.out("heap_registered", qs.heap())
        why = asyncio.run(_scenario(client, writes))
        qs.out("writes", writes[0])
    except MemoryError:
        why = "MemoryError"
    except Exception as exc:
        sys.print_exception(exc)
        why = "error"
    qs.out("result", "DONE" if why is None else "FAIL " + why)
    del block
    qs.out("end", 1)
