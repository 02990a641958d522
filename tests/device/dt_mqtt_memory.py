"""Receive-path memory: oversize packets are drained in buffer-sized chunks, never allocated,
and a small message costs a bounded number of heap bytes (checked on MicroPython, where
gc.mem_alloc() exists; on CPython the same flows run for behaviour only)."""

import asyncio
import gc

from harness import run
from scripted_broker import connack, publish
from tether.mqtt import MQTTClient

HAVE_MEM_ALLOC = hasattr(gc, "mem_alloc")


class FeedStream:
    """A reader that plays segments without copying them: (bytes) or (count, None) for
    `count` filler bytes copied from one preallocated chunk. Writes are only counted."""

    def __init__(self):
        self.segments = []
        self.pos = 0
        self.chunk = bytearray(4096)
        self.chunk_mv = memoryview(self.chunk)
        self.written = 0
        self.closed = False
        self.ready = None

    def add(self, seg):
        self.segments.append(seg)
        if self.ready is not None:
            self.ready.set()

    async def readinto(self, buf):
        while not self.segments:
            self.ready = asyncio.Event()
            await self.ready.wait()
        seg = self.segments[0]
        if isinstance(seg, tuple):
            left = seg[0] - self.pos
            n = min(len(buf), left, len(self.chunk))
            buf[:n] = self.chunk_mv[:n]
        else:
            left = len(seg) - self.pos
            n = min(len(buf), left)
            buf[:n] = seg[self.pos : self.pos + n]
        self.pos += n
        if n == left:
            self.segments.pop(0)
            self.pos = 0
        return n

    def write(self, data):
        self.written += len(data)

    async def drain(self):
        await asyncio.sleep(0)

    def close(self):
        self.closed = True

    async def wait_closed(self):
        pass


async def connected(stream, **kw):
    async def opener(host, port, **k):
        return stream, stream

    c = MQTTClient("m", "h", open_connection=opener, **kw)
    stream.add(connack())
    await c.connect()
    return c


async def until(cond, what, ms=3000):
    for _ in range(ms // 5):
        if cond():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("timed out waiting for " + what)


def test_oversize_packet_is_drained_without_allocating_it():
    async def go():
        s = FeedStream()
        got = []
        c = await connected(s, max_packet=4096, on_message=lambda *a: got.append(a))
        size = 200000
        body = 2 + 3 + size
        # PUBLISH QoS 0 "big", remaining length 200005 = c5 9a 0c
        header = bytes([0x30, 0xC5, 0x9A, 0x0C, 0, 3]) + b"big"
        assert body == 0xC5 - 0x80 + ((0x9A - 0x80) << 7) + (0x0C << 14)
        gc.collect()
        gc.disable()  # so a collection cannot hide an allocation
        before = gc.mem_alloc() if HAVE_MEM_ALLOC else 0
        s.add(header)
        s.add((size, None))
        s.add(publish("next", b"ok"))
        await until(lambda: got, "the message after the oversize one")
        grew = (gc.mem_alloc() - before) if HAVE_MEM_ALLOC else 0
        gc.enable()
        assert got == [("next", b"ok", False, 0)], got
        assert c.stats["oversize_dropped"] == 1 and c.connected
        # Allocating the packet would cost >= 200 KB; draining it costs a few hundred
        # bytes per 4 KB read (the stream's generator frames and views).
        print("drained %d bytes, heap grew %d" % (size, grew))
        assert grew < size // 4, grew
        c.close()

    run(go())


def test_small_message_receive_allocation_is_bounded():
    async def go():
        s = FeedStream()
        count = [0]

        def on_message(topic, payload, retain, qos):
            count[0] += 1

        c = await connected(s, max_packet=1024, on_message=on_message)
        msg = publish("dev/cmd", b"x" * 32)
        s.add(msg)
        await until(lambda: count[0] == 1, "the first message")
        n = 50
        if HAVE_MEM_ALLOC:
            gc.collect()
            gc.disable()
            before = gc.mem_alloc()
        for _ in range(n):
            s.add(msg)
        await until(lambda: count[0] == n + 1, "all messages")
        if HAVE_MEM_ALLOC:
            per_message = (gc.mem_alloc() - before) // n
            gc.enable()
            print("receive: %d heap bytes per message" % per_message)
            # topic str + payload bytes ~ 100 bytes; the rest is the read's generator
            # frames (the fake stream's and the test's polling) and two views.
            assert per_message < 700, per_message
        c.close()

    run(go())
