"""The one place where MicroPython and CPython asyncio streams differ for the MQTT client.

- MicroPython's Stream has `readinto(buf)`, which fills the client's preallocated buffer
  without allocating; CPython's StreamReader has only `read(n)`, so there we copy.
- MicroPython's Stream.write() sends at once or appends to one `out_buf`; two tasks draining
  at the same time would resend or drop bytes, so the client lets one packet at a time
  be written and drained (its `_busy` flag; asyncio.Lock costs ~500 bytes per use).
- MicroPython's Stream.close() does nothing; the socket closes in wait_closed(). `abort()`
  closes the socket itself so a dead connection is released without awaiting.

TCP_NODELAY (what each port offers, read from micropython 1.2x sources):
- CPython asyncio sets TCP_NODELAY on every TCP connection already.
- esp32 (ports/esp32/modsocket.c) exports socket.IPPROTO_TCP and socket.TCP_NODELAY and its
  setsockopt() handles that option; lwIP ports (rp2, stm32: extmod/modlwip.c) export both
  too and set the pcb's TF_NODELAY flag (their setsockopt looks only at the option).
- the unix port exports neither constant, but its setsockopt() passes level and option
  straight to the OS, so Linux's numbers (IPPROTO_TCP 6, TCP_NODELAY 1) work.
- a TLS stream wraps an SSLSocket, which has no setsockopt() on MicroPython: over TLS the
  option cannot be set after the handshake wrapper exists, and we leave it.
"""

import asyncio
import sys

from tether.compat import MICROPYTHON

if MICROPYTHON:
    sleep_ms = asyncio.sleep_ms
    wait_for_ms = asyncio.wait_for_ms
else:

    def sleep_ms(ms):
        return asyncio.sleep(ms / 1000)

    def wait_for_ms(aw, ms):
        return asyncio.wait_for(aw, ms / 1000)

    # Defined on CPython only: on a board the class would cost RAM for nothing.
    class _CopyingWriter:
        """CPython: hand the transport a copy of every buffer.

        The client reuses its send buffers (`_tx`, the 4-byte ack) for the next packet as soon
        as write() returns. CPython >= 3.12 queues the caller's buffer without copying when the
        socket is backed up (zero-copy writes), so the queued tail would be overwritten; a copy
        costs nothing that matters on a gateway. MicroPython's Stream copies into out_buf itself.
        """

        def __init__(self, writer):
            self._writer = writer

        def write(self, buf):
            self._writer.write(bytes(buf))

        def __getattr__(self, name):  # drain, close, wait_closed, get_extra_info, transport...
            return getattr(self._writer, name)


def set_nodelay(writer):
    """Best effort: disable Nagle on a MicroPython TCP stream (see module docstring)."""
    sock = getattr(writer, "s", None)
    if not MICROPYTHON or sock is None or not hasattr(sock, "setsockopt"):
        return False
    try:
        import socket

        level = getattr(socket, "IPPROTO_TCP", 6 if sys.platform == "linux" else None)
        opt = getattr(socket, "TCP_NODELAY", 1 if sys.platform == "linux" else None)
        if level is None or opt is None:
            return False
        sock.setsockopt(level, opt, 1)
        return True
    except Exception:  # an option the port refuses must not cost the connection
        return False


class Transport:
    """A reader/writer pair from open_connection() with the few calls the client needs.

    The client writes to `_w` itself and, on MicroPython, reads with `_r.readinto`
    directly when `_has_readinto` (one coroutine frame less per read)."""

    def __init__(self, reader, writer):
        self._r = reader
        self._w = writer if MICROPYTHON else _CopyingWriter(writer)
        self._has_readinto = hasattr(reader, "readinto")

    async def readinto(self, mv):
        """Read at least one byte into mv; return the count, 0 at end of stream."""
        if self._has_readinto:
            while True:
                n = await self._r.readinto(mv)
                # None is a non-blocking miss, not EOF: a TLS socket returns it while
                # mbedTLS still needs bytes (handshake, a partial record). Wait again.
                if n is not None:
                    return n
        data = await self._r.read(len(mv))
        n = len(data)
        mv[:n] = data
        return n

    def abort(self):
        w = self._w
        try:
            w.close()
        except Exception:
            pass
        sock = getattr(w, "s", None)
        if MICROPYTHON and sock is not None:
            try:
                sock.close()
            except Exception:
                pass


def move_down(buf, mv, start, end):
    """Move buf[start:end] to the front of buf (the unread tail of the receive buffer)."""
    n = end - start
    if MICROPYTHON:
        mv[0:n] = mv[start:end]  # memmove, no copy on the heap beyond the view objects
    else:
        buf[0:n] = bytes(mv[start:end])  # CPython: overlapping memcpy is not guaranteed
    return n
