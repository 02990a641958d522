"""A fake MQTT broker on an in-memory stream pair, for byte-exact client tests.

Runs on CPython and on the MicroPython unix port. Pass `broker.open_connection` where the
client would call `asyncio.open_connection`; then play the broker from the test:

    broker = ScriptedBroker()
    client = MQTTClient("c1", "broker", open_connection=broker.open_connection)
    task = asyncio.create_task(client.connect())
    await broker.expect(bytes.fromhex("100e00044d5154540402003c00026331"))  # CONNECT
    broker.send(connack())                  # bytes the client will read
    await task
    pkt = await broker.recv_packet()        # the next whole packet the client wrote
    broker.send_eof()                       # the client reads b"" (peer closed)

API (every wait is bounded by timeout_ms and fails with AssertionError):
- `await open_connection(host, port, ssl=None, server_hostname=None)` -> (reader, writer);
  `broker.opened` lists the (host, port, ssl, server_hostname) of every call;
  `broker.refuse = OSError(...)` makes the next call raise it instead.
- `send(data)`: queue bytes for the client; `send_eof()`: end of stream after them.
- `await expect(data)`: the next bytes the client writes must be exactly `data`.
- `await recv_packet()`: the next complete MQTT packet written, as bytes.
- `await expect_silence(ms)`: the client writes nothing for ms milliseconds.
- `await expect_closed()`: the client closes its writer.
- `await play([("expect", b"..."), ("send", b"..."), ("eof",), ("silence", ms),
  ("closed",)])`: the same steps as a script, in order.
- `written`: bytes written by the client and not yet consumed; `closed`: writer closed.
- `max_read`: if set, each client read returns at most this many bytes (partial reads).
- `stalled = True`: the client's drain() blocks (a peer that stopped reading) until False.
- `fail_writes = OSError(...)`: every client write raises it (a reset connection).
- `hexdump(b)`: helper for messages.

Packet builders (independent of tether.mqtt_packet, so they check it): `connack`,
`publish`, `puback`, `pubrec`, `pubrel`, `pubcomp`, `suback`, `unsuback`, `pingresp`,
`varint`.
"""

import asyncio


def hexdump(b):
    return " ".join("%02x" % x for x in bytes(b))


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def _packet(first, body):
    return bytes([first]) + varint(len(body)) + bytes(body)


def _u16(n):
    return bytes([n >> 8, n & 0xFF])


def connack(code=0, session_present=False):
    return bytes([0x20, 2, 1 if session_present else 0, code])


def publish(topic, payload, qos=0, pid=0, retain=False, dup=False):
    if isinstance(topic, str):
        topic = topic.encode()
    if isinstance(payload, str):
        payload = payload.encode()
    first = 0x30 | (8 if dup else 0) | (qos << 1) | (1 if retain else 0)
    body = _u16(len(topic)) + topic + (_u16(pid) if qos else b"") + payload
    return _packet(first, body)


def puback(pid):
    return b"\x40\x02" + _u16(pid)


def pubrec(pid):
    return b"\x50\x02" + _u16(pid)


def pubrel(pid):
    return b"\x62\x02" + _u16(pid)


def pubcomp(pid):
    return b"\x70\x02" + _u16(pid)


def suback(pid, *codes):
    return _packet(0x90, _u16(pid) + bytes(codes or (0,)))


def unsuback(pid):
    return b"\xb0\x02" + _u16(pid)


def pingresp():
    return b"\xd0\x00"


async def _until(cond, timeout_ms, what):
    waited = 0
    while not cond():
        if waited >= timeout_ms:
            raise AssertionError("timed out after %d ms waiting for %s" % (timeout_ms, what))
        await asyncio.sleep(0.002)
        waited += 2


class _Reader:
    def __init__(self, broker):
        self._b = broker

    async def readinto(self, buf):
        b = self._b
        while not b._inbox and not b._eof:
            b._data = asyncio.Event()
            await b._data.wait()
        if not b._inbox:
            return 0
        n = min(len(buf), len(b._inbox), b.max_read or len(b._inbox))
        buf[:n] = b._inbox[:n]
        b._inbox = b._inbox[n:]
        return n

    async def read(self, n=-1):
        buf = bytearray(n if n > 0 else 65536)
        k = await self.readinto(buf)
        return bytes(buf[:k])


class _Writer:
    def __init__(self, broker):
        self._b = broker

    def write(self, data):
        if self._b.closed:
            raise OSError(32, "write after close")
        if self._b.fail_writes is not None:
            raise self._b.fail_writes
        self._b.written += bytes(data)  # copy: the client reuses its buffers

    async def drain(self):
        await asyncio.sleep(0)
        while self._b.stalled and not self._b.closed:  # a peer that stopped reading
            await asyncio.sleep(0.002)

    def close(self):
        self._b.closed = True

    async def wait_closed(self):
        pass

    def is_closing(self):
        return self._b.closed

    def get_extra_info(self, name, default=None):
        return default


class ScriptedBroker:
    def __init__(self, max_read=None):
        self.max_read = max_read
        self.opened = []
        self.refuse = None
        self.stalled = False
        self.fail_writes = None
        self._reset()

    def _reset(self):
        self.written = bytearray()
        self.closed = False
        self._inbox = b""
        self._eof = False
        self._data = None

    async def open_connection(self, host, port, ssl=None, server_hostname=None):
        self.opened.append((host, port, ssl, server_hostname))
        if self.refuse is not None:
            exc, self.refuse = self.refuse, None
            raise exc
        self._reset()
        return _Reader(self), _Writer(self)

    def _wake(self):
        if self._data is not None:
            self._data.set()

    def send(self, data):
        self._inbox += bytes(data)
        self._wake()

    def send_eof(self):
        self._eof = True
        self._wake()

    async def expect(self, data, timeout_ms=2000):
        data = bytes(data)
        await _until(lambda: len(self.written) >= len(data), timeout_ms, hexdump(data))
        got = bytes(self.written[: len(data)])
        if got != data:
            i = 0
            while got[i] == data[i]:
                i += 1
            lo = max(0, i - 16)
            raise AssertionError(
                "bytes differ at offset %d (showing from %d):\nexpected %s\n     got %s"
                % (i, lo, hexdump(data[lo : i + 16]), hexdump(got[lo : i + 16]))
            )
        self.written = self.written[len(data) :]

    def _packet_len(self):
        w = self.written
        n = shift = 0
        for i in range(1, min(len(w), 5)):
            n |= (w[i] & 0x7F) << shift
            shift += 7
            if not w[i] & 0x80:
                return i + 1 + n if len(w) >= i + 1 + n else 0
        return 0

    async def recv_packet(self, timeout_ms=2000):
        await _until(lambda: self._packet_len() > 0, timeout_ms, "a packet from the client")
        n = self._packet_len()
        pkt = bytes(self.written[:n])
        self.written = self.written[n:]
        return pkt

    async def expect_silence(self, ms):
        await asyncio.sleep(ms / 1000)
        if self.written:
            raise AssertionError("unexpected bytes from the client: " + hexdump(self.written))

    async def expect_closed(self, timeout_ms=2000):
        await _until(lambda: self.closed, timeout_ms, "the client to close the connection")

    async def play(self, steps, timeout_ms=2000):
        """Run a script: ("expect", bytes), ("send", bytes), ("eof",), ("silence", ms),
        ("closed",) in order; the first step that does not happen raises AssertionError."""
        for step in steps:
            kind = step[0]
            if kind == "expect":
                await self.expect(step[1], timeout_ms)
            elif kind == "send":
                self.send(step[1])
            elif kind == "eof":
                self.send_eof()
            elif kind == "silence":
                await self.expect_silence(step[1])
            elif kind == "closed":
                await self.expect_closed(timeout_ms)
            else:
                raise ValueError("unknown step %r" % (kind,))


async def connected_client(broker, client_id="c1", host="broker.test", **kw):
    """A tether.mqtt.MQTTClient connected to `broker` (CONNECT read, CONNACK 0 sent)."""
    from tether.mqtt import MQTTClient

    c = MQTTClient(client_id, host, open_connection=broker.open_connection, **kw)
    task = asyncio.create_task(c.connect())
    await broker.recv_packet()
    broker.send(connack())
    await task
    return c
