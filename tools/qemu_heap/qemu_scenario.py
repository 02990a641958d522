"""The heap scenario of issue 10 on one MicroPython image: frozen into the qemu port by
tools/qemu_heap.py, also run as a plain module on the unix port for comparison.

    import qemu_scenario; qemu_scenario.main(pool)

ArduinoCloudClient with 10 variables, connected over an in-memory MQTT broker (no TLS: the
qemu port has no network) to a fake Arduino cloud in the same event loop. The cloud answers
discovery (ThingBegin -> ThingUpdate) and last values (LastValuesBegin -> LastValuesUpdate),
then, once the device's first full push arrives, writes v0..v8 one at a time (20 writes);
on_write copies each value to v9, and the cloud sends the next write when v9's push carries
the value. Done: 20 writes applied and v9's last push acknowledged (bench/core_memory.py's
scenario, minus TLS).

src: where Tether is imported from: "frozen" (the image), "romfs" (.mpy files in the qemu
port's ROMFS partition, bytecode run in place), "mpy" (the same files loaded into RAM, as
from a board's filesystem after `mip install`).

pool: 0 for the full heap; else a block is allocated and held first, so that the heap the
scenario can use is `pool` bytes (allocated + free, as after a gc.collect()), as if the
image had been built with a smaller heap. Lines `QH <name> <value>` report the figures.

The cloud is kept small (it runs in the measured heap, where a real cloud would not): it
parses the client's packets as they are written, and answers synchronously.
"""

import asyncio
import gc
import io
import os
import sys
import time

import vfs

DEV = "3a1c5e1e-7d1b-4c2e-9f00-7e57e7e57001"
THING = "0a0b0c0d-1111-4222-8333-444455556666"
NVARS = 10
WRITES = 20
TIMEOUT_MS = 4000  # the scenario takes well under 1 s; a stuck task must not cost long


def out(name, value):
    print("QH", name, value)


_held = [0]  # bytes of the block _hold() keeps: not part of any figure


def heap():
    gc.collect()
    return gc.mem_alloc() - _held[0]


def _varint(n):
    b = bytearray()
    while True:
        if n < 128:
            b.append(n)
            return b
        b.append(n & 127 | 128)
        n >>= 7


class Cloud:
    """The broker and the Arduino cloud behind it, on one in-memory stream pair.

    The client's reader and writer are this object (readinto / write / drain / close)."""

    def __init__(self):
        self.inbox = bytearray()  # bytes for the client
        self.pos = 0
        self.rx = bytearray()  # bytes from the client, not yet a whole packet
        self.ev = asyncio.Event()
        self.closed = False
        self.pid = 0
        self.sent = 0  # writes sent
        self.connects = 0
        self.legacy = False  # answer discovery the legacy way too (see _packet)
        self.dw = ("/a/d/" + DEV + "/c/dw").encode()
        self.ei = ("/a/t/" + THING + "/e/i").encode()

    async def open_connection(self, host, port, ssl=None, server_hostname=None):
        self.inbox = bytearray()
        self.pos = 0
        self.rx = bytearray()
        self.closed = False
        self.connects += 1
        return self, self

    # -- the client's side of the stream ---------------------------------------------------

    async def readinto(self, buf):
        while self.pos >= len(self.inbox) and not self.closed:
            self.ev.clear()
            await self.ev.wait()
        n = min(len(buf), len(self.inbox) - self.pos)
        if n <= 0:
            return 0
        buf[:n] = memoryview(self.inbox)[self.pos : self.pos + n]
        self.pos += n
        if self.pos >= len(self.inbox):
            self.inbox[:] = b""
            self.pos = 0
        return n

    def write(self, data):
        if self.closed:
            raise OSError(32, "write after close")
        self.rx += data
        self._parse()

    async def drain(self):
        await asyncio.sleep_ms(0)

    def close(self):
        self.closed = True
        self.ev.set()

    async def wait_closed(self):
        pass

    def is_closing(self):
        return self.closed

    def get_extra_info(self, name, default=None):
        return default

    # -- the broker --------------------------------------------------------------------

    def _parse(self):
        rx = self.rx
        while len(rx) >= 2:
            n = shift = 0
            i = 1
            while True:
                if i >= len(rx):
                    return
                n |= (rx[i] & 127) << shift
                shift += 7
                i += 1
                if not rx[i - 1] & 128:
                    break
            end = i + n
            if len(rx) < end:
                return
            self._packet(rx[0], memoryview(rx)[i:end])
            rx[:end] = b""

    def _send(self, data):
        self.inbox += data
        self.ev.set()

    def _packet(self, first, body):
        kind = first >> 4
        if kind == 1:  # CONNECT
            self._send(b"\x20\x02\x00\x00")
        elif kind == 3:  # PUBLISH
            tl = body[0] << 8 | body[1]
            topic = bytes(body[2 : 2 + tl])
            p = 2 + tl
            if first & 6:
                self._send(b"\x40\x02" + bytes(body[p : p + 2]))  # PUBACK
                p += 2
            self._cloud(topic, body[p:])
        elif kind == 8:  # SUBSCRIBE: grant QoS 1
            self._send(b"\x90\x03" + bytes(body[0:2]) + b"\x01")
            topic = bytes(body[4:-1])
            if self.legacy and topic.startswith(b"/a/d/") and topic.endswith(b"/e/i"):
                # The legacy flow (arduino-iot-cloud-py): the thing id on the device topic.
                self.publish(topic, b"\x81\xa2\x00\x68thing_id\x03\x78\x24" + THING.encode())
        elif kind == 10:  # UNSUBSCRIBE
            self._send(b"\xb0\x02" + bytes(body[0:2]))
        elif kind == 12:  # PINGREQ
            self._send(b"\xd0\x00")
        elif kind == 14:  # DISCONNECT
            self.close()

    def publish(self, topic, payload):
        self.pid = self.pid % 65535 + 1
        body_len = 2 + len(topic) + 2 + len(payload)
        pkt = bytearray(b"\x32")
        pkt += _varint(body_len)
        pkt.append(len(topic) >> 8)
        pkt.append(len(topic) & 255)
        pkt += topic
        pkt.append(self.pid >> 8)
        pkt.append(self.pid & 255)
        pkt += payload
        self._send(pkt)

    # -- the Arduino cloud ---------------------------------------------------------------

    def _cloud(self, topic, payload):
        if topic.endswith(b"/c/up"):
            tag = bytes(payload[0:5])
            if tag == b"\xda\x00\x01\x03\x00":  # ThingBegin -> ThingUpdate [thing id]
                self.publish(self.dw, b"\xda\x00\x01\x04\x00\x81\x78\x24" + THING.encode())
            elif tag == b"\xda\x00\x01\x05\x00":  # LastValuesBegin -> LastValuesUpdate
                pack = bytearray(b"\x8a")  # [{0: "v<i>", 2: i}, ...]: what the device has
                for i in range(NVARS):
                    pack += b"\xa2\x00\x62\x76"
                    pack.append(0x30 + i)
                    pack.append(2)
                    pack.append(i)
                self.publish(self.dw, b"\xda\x00\x01\x06\x00\x81\x58" + bytes((len(pack),)) + pack)
        elif topic.endswith(b"/e/o"):
            if not self.sent:  # the first push (all ten variables): start writing
                self._write()
            elif self.sent < WRITES and _v9(self.sent - 1 + 1000) in bytes(payload):
                self._write()

    def _write(self):
        # [{0: "v<k>", 2: 1000 + i}] on the thing's e/i: a dashboard write.
        i = self.sent
        self.sent += 1
        v = 1000 + i
        self.publish(
            self.ei,
            bytes((0x81, 0xA2, 0, 0x62, 0x76, 0x30 + i % 9, 2, 0x19, v >> 8, v & 255)),
        )


def _v9(v):
    return bytes((0x62, 0x76, 0x39, 2, 0x19, v >> 8, v & 255))  # "v9": v


def _hold(pool):
    # Allocate and keep a block so that allocated + free = pool (the GC pool of a smaller
    # image). Returns the block and the pool the scenario really has.
    gc.collect()
    total = gc.mem_alloc() + gc.mem_free()
    if not pool or pool >= total:
        return None, total
    before = gc.mem_alloc()
    block = bytearray(max(16, total - pool - 32))
    gc.collect()
    _held[0] = gc.mem_alloc() - before
    return block, total - _held[0]


async def _wait(pred, client, deadline):
    while not pred():
        # session.failures is stats()["connect_failures"] without building the stats dict
        # every 2 ms (the peer's scenario polls nothing either).
        if client.session.failures:
            return "connect_failed"
        if time.ticks_diff(deadline, time.ticks_ms()) <= 0:
            return "timeout"
        await asyncio.sleep_ms(2)
    return None


async def _scenario(client, cloud, writes):
    deadline = time.ticks_add(time.ticks_ms(), TIMEOUT_MS)
    task = asyncio.create_task(client.run())
    why = await _wait(
        lambda: client.connected and client.counters["pushes"] >= 1, client, deadline
    )
    if why is None:
        out("heap_connected", heap())
        v9 = client.records["v9"]
        why = await _wait(lambda: writes[0] >= WRITES and not v9.dirty, client, deadline)
    if why is None:
        out("heap_done", heap())
    client.stop()
    task.cancel()
    return why


MODULES = (
    "asyncio",
    "tether.compat",
    "tether.log",
    "tether.hal.backoff",
    "tether.session",
    "tether.cloud.router",
    "tether.cloud.scheduler",
    "tether.cloud.client",
    "tether.arduino.records",
    "tether.arduino.client",
    "tether.mqtt_packet",
    "tether.mqtt_stream",
    "tether.mqtt",
    "tether.cbor",
    "tether.senml",
    "tether.arduino.protocol",
)


def modules():
    """Heap each module adds, imported one after the other in this order (a package's
    __init__ and what a module pulls in count for the first module that needs them)."""
    for name in MODULES:
        before = heap()
        __import__(name)
        out("module_" + name, heap() - before)
    out("end", 1)


class _RamFile(io.IOBase):
    # A file of the ROMFS seen as a plain stream: the importer then loads the .mpy into
    # RAM (as from a board's filesystem) instead of running its bytecode in place.
    def __init__(self, f):
        self.f = f

    def readinto(self, buf):
        return self.f.readinto(buf)

    def ioctl(self, req, arg):
        if req == 4:  # MP_STREAM_CLOSE
            self.f.close()
            return 0
        return -1


class _RamFS:
    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        pass

    def stat(self, path):
        # os is imported at the top: an import in here would look in /ram again (os and
        # machine are extensible built-ins, searched for on sys.path first) and recurse.
        return os.stat("/rom" + path)

    def open(self, path, mode):
        return _RamFile(open("/rom" + path, "rb"))


def _source(src):
    # "frozen": Tether from the image. "romfs": .mpy files in the ROMFS partition, run in
    # place (bytecode stays in ROM). "mpy": the same files loaded into RAM.
    if src == "frozen":
        return
    # MicroPython mounts the ROMFS at /rom at start-up (and puts it after .frozen in sys.path).
    if src == "romfs":
        sys.path.insert(0, "/rom")
    else:
        vfs.mount(_RamFS(), "/ram")
        sys.path.insert(0, "/ram")


def main(pool=0, src="frozen"):
    block, got = _hold(pool)
    out("pool", got)
    why = None
    try:
        _source(src)
        out("heap_base", heap())
        from tether.arduino import ArduinoCloudClient

        out("heap_import", heap())

        class Client(ArduinoCloudClient):
            def tls_context(self):
                return None  # plain MQTT over the in-memory stream

        cloud = Cloud()
        client = Client(DEV, DEV, "secret", server="broker.local", port=1883)
        client.open_connection = cloud.open_connection
        client.time_synced = True  # no SNTP stage: the port has no network
        writes = [0]

        def on_write(c, value):
            writes[0] += 1
            c["v9"] = value

        for i in range(NVARS - 1):
            client.register("v%d" % i, value=i, on_write=on_write)
        client.register("v9", value=NVARS - 1)
        out("heap_registered", heap())
        why = asyncio.run(_scenario(client, cloud, writes))
        out("writes", writes[0])
        out("stats", client.stats())
    except MemoryError as exc:
        why = "MemoryError"
        sys.print_exception(exc)  # where the heap ran out
    except Exception as exc:
        sys.print_exception(exc)
        why = "error"
    out("result", "DONE" if why is None else "FAIL " + why)
    del block
    out("end", 1)
