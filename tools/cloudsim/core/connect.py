"""The CONNECT packet, read by the front before the broker sees the connection.

The front decides on a CONNECT (protocol, credentials, the plug-in's verdict) itself, then
replays it to amqtt with the client id replaced by the front's session key (see
broker.py), so amqtt never sees a client that was refused and never mixes up two clouds'
clients that chose the same id (or, like Astarte's, an empty one).
"""

import asyncio
import time

from amqtt.adapters import StreamReaderAdapter

MAX_CONNECT = 4096


class Connect:
    """The fields of an MQTT 3.1.1 CONNECT (§3.1), as received."""

    def __init__(self, body):
        self.raw_len = len(body)
        pos = 0

        def field():
            nonlocal pos
            if pos + 2 > len(body):
                raise ValueError("CONNECT truncated")
            size = int.from_bytes(body[pos : pos + 2], "big")
            if pos + 2 + size > len(body):
                raise ValueError("CONNECT truncated")
            pos += 2 + size
            return bytes(body[pos - size : pos])

        self.protocol = field().decode("utf-8", "replace")
        if pos + 4 > len(body):
            raise ValueError("CONNECT truncated")
        self.level, self.flags = body[pos], body[pos + 1]
        self.keepalive = int.from_bytes(body[pos + 2 : pos + 4], "big")
        pos += 4
        self.client_id = field().decode("utf-8", "replace")
        self.will_topic = self.will_message = None
        if self.flags & 0x04:
            self.will_topic = field()
            self.will_message = field()
        self.username = field().decode("utf-8", "replace") if self.flags & 0x80 else None
        self.password = field() if self.flags & 0x40 else None
        self.clean_session = bool(self.flags & 0x02)

    def encode(self, client_id):
        """The same CONNECT with another client id (what amqtt is handed)."""

        def s(b):
            return len(b).to_bytes(2, "big") + b

        body = s(self.protocol.encode()) + bytes([self.level, self.flags])
        body += self.keepalive.to_bytes(2, "big") + s(client_id.encode())
        if self.flags & 0x04:
            body += s(self.will_topic) + s(self.will_message)
        if self.flags & 0x80:
            body += s(self.username.encode())
        if self.flags & 0x40:
            body += s(self.password)
        n, length = len(body), bytearray()
        while True:
            b, n = n & 0x7F, n >> 7
            length.append(b | (0x80 if n else 0))
            if not n:
                break
        return bytes([0x10]) + bytes(length) + body


async def read_connect(reader, max_len=MAX_CONNECT):
    """-> Connect. ValueError for anything but a sane CONNECT."""
    head = await reader.readexactly(1)
    if head[0] != 0x10:
        raise ValueError("first packet is not CONNECT")
    length, shift = 0, 0
    for _ in range(4):
        b = (await reader.readexactly(1))[0]
        length |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            break
    else:
        raise ValueError("bad remaining length")
    if length > max_len:
        raise ValueError("CONNECT too large")
    return Connect(await reader.readexactly(length))


_CHUNK = 65536  # what TimedReader asks the stream for at most


class TimedReader(StreamReaderAdapter):
    # amqtt's broker does not act on keepalive (its read timeout is a no-op), so every read
    # from the stream is stamped here and the front's watchdog drops connections silent for
    # 1.5 x keepalive. amqtt reads a PUBLISH in 7 calls of a few bytes: they are served from
    # what one read of the stream returned (a readexactly() each cost more than the slice).
    def __init__(self, reader, conn, prefix=b""):
        super().__init__(reader)
        self._conn = conn
        self._buf = prefix  # read, not yet handed to amqtt: first the (rewritten) CONNECT
        self._pos = 0

    async def read(self, n=-1):
        avail = len(self._buf) - self._pos
        if n == -1:
            if avail:
                return self._take(avail)
            data = await self._reader.read(-1)
            self._conn.last_rx = time.monotonic()
            return data
        while avail < n:
            chunk = await self._reader.read(max(n - avail, _CHUNK))
            if not chunk:
                raise asyncio.IncompleteReadError(self._take(avail), n)
            self._buf, self._pos = self._buf[self._pos :] + chunk, 0
            avail = len(self._buf)
            self._conn.last_rx = time.monotonic()
        return self._take(n)

    def _take(self, n):
        data = self._buf[self._pos : self._pos + n]
        self._pos += n
        return data
