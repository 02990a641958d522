"""The sending half of tether.mqtt.MQTTClient (a mixin): one packet at a time goes out.

A `_busy` flag instead of asyncio.Lock, whose `async with` allocates ~500 bytes per use on
MicroPython. Between the check and the write nothing awaits, so the flag cannot be taken
twice. Waiters (rare) poll the client's pulse. Small PUBLISH packets are built in one
preallocated buffer and written at once (one TCP segment). Split from tether.mqtt so neither
module is large to compile from source.
"""

from tether.compat import ticks_ms
from tether.mqtt_packet import MQTTError, publish_header_size, put_ack, put_publish_header
from tether.mqtt_stream import sleep_ms


class Outgoing:
    async def _acquire(self):
        if not self._alive:
            raise MQTTError("not connected")
        self._wr_waiting += 1
        try:
            while self._busy:
                await self._ev.wait()
                if not self._alive:
                    raise MQTTError(self.close_reason)
        finally:
            self._wr_waiting -= 1
        self._busy = True

    def _release(self, ok):
        self._busy = False
        if ok:
            self._last_tx = ticks_ms()
            self.stats["packets_out"] += 1
        if self._wr_waiting:
            self._pulse()

    def _cancelled_write(self, w):
        self._busy = False
        # MicroPython keeps unsent bytes in out_buf but forgets how far a cancelled drain()
        # got: the next drain would resend part of a packet. Only a new connection is safe.
        if getattr(w, "out_buf", None):
            self._die("write cancelled in the middle of a packet")
        elif self._wr_waiting:
            self._pulse()

    def _write_failed(self, exc):
        self._busy = False
        self._die("write failed: %r" % (exc,))
        return MQTTError(self.close_reason)  # the first failure (TLS: maybe the reader's)

    async def _send(self, pkt, ack=0):
        """Send pkt, or the 4-byte ack `type << 16 | pid` when pkt is None."""
        if self._busy or not self._alive:
            await self._acquire()
        else:
            self._busy = True
        w = self._t._w
        try:
            if pkt is None:
                # Filled only now, while we own the writer: the buffer is shared.
                put_ack(self._ackbuf, ack >> 16, ack & 0xFFFF)
                pkt = self._ackbuf
            w.write(pkt)
            # MicroPython's Stream.write() has sent it all when out_buf is empty: then yield
            # once with the allocation-free sleep_ms(0) rather than create a drain().
            if getattr(w, "out_buf", 1):
                await w.drain()
            else:
                await sleep_ms(0)
        except Exception as exc:
            raise self._write_failed(exc)
        except BaseException:  # cancelled (wait_for around publish): release the writer
            self._cancelled_write(w)
            raise
        self._release(True)

    async def _send_publish(self, topic, payload, qos, retain, dup, pid):
        if not self.connected:
            raise MQTTError("not connected")
        if self._busy:
            await self._acquire()
        else:
            self._busy = True
        w = self._t._w
        plen = len(payload)
        try:
            hlen = publish_header_size(len(topic), plen, qos)
            tx = self._tx
            if hlen + plen <= len(tx):  # small: one write, one TCP segment
                put_publish_header(tx, topic, plen, qos, retain, dup, pid)
                tx[hlen : hlen + plen] = payload
                w.write(self._txmv[: hlen + plen])
            else:
                if hlen > len(tx):  # a topic longer than ~250 bytes: grow once
                    self._tx = tx = bytearray(hlen)
                    self._txmv = memoryview(tx)
                put_publish_header(tx, topic, plen, qos, retain, dup, pid)
                w.write(self._txmv[:hlen])
                w.write(payload)
            # MicroPython's Stream.write() has sent it all when out_buf is empty: then yield
            # once with the allocation-free sleep_ms(0) rather than create a drain().
            if getattr(w, "out_buf", 1):
                await w.drain()
            else:
                await sleep_ms(0)
        except MQTTError:
            self._release(False)  # packet too large: nothing was written
            raise
        except Exception as exc:
            raise self._write_failed(exc)
        except BaseException:  # cancelled (wait_for around publish): release the writer
            self._cancelled_write(w)
            raise
        self._release(True)
        self.stats["messages_out"] += 1
