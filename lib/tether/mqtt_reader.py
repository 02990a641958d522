"""The receiving half of tether.mqtt.MQTTClient (a mixin): the reader task and the ticker.

The reader parses packets from the one preallocated buffer (readinto, memoryview): a packet
over the buffer is drained in buffer-sized chunks and counted, never allocated; a malformed
one closes the connection. The ticker keeps the connection alive (PINGREQ), declares it dead
after 1.5 x keepalive of silence, retransmits unacknowledged QoS 1/2 messages with DUP, and
pulses the waiters. Split from tether.mqtt so neither module is large to compile from source.
"""

from tether import log
from tether.compat import const, ticks_diff, ticks_ms
from tether.mqtt_packet import (
    PINGREQ_PACKET,
    MQTTError,
    header_size,
    remaining_length,
    topic_name_error,
)
from tether.mqtt_stream import move_down, sleep_ms

_log = log.getLogger("mqtt")

_CONNACK = const(2)
_PUBLISH = const(3)
_PUBACK = const(4)
_PUBREC = const(5)
_PUBREL = const(6)
_PUBCOMP = const(7)
_SUBACK = const(9)
_UNSUBACK = const(11)
_PINGRESP = const(13)

# In-flight entry: [state, topic, payload, qos, retain, last_sent_ticks] (as tether.mqtt)
_DONE = const(0)
_WAIT_COMP = const(2)
_SENDING = const(3)
_E_STATE = const(0)
_E_SENT = const(5)


class _Malformed(Exception):
    pass


class Incoming:
    # ---- ticker: keepalive, dead connection, retransmission ---------------------------

    async def _tick_loop(self):
        ka = self._keepalive * 1000
        try:
            while self._alive:
                await sleep_ms(self._tick_ms)
                now = ticks_ms()
                if ka and ticks_diff(now, self._last_rx) >= ka + ka // 2:
                    self._die("nothing received for 1.5 x keepalive (%d s)" % self._keepalive)
                    return
                if ka and self.connected and self._ping_due(now, ka // 2):
                    self._last_ping = now
                    self.stats["pings"] += 1
                    await self._send(PINGREQ_PACKET)
                if self._inflight and self.connected:
                    await self._retransmit(now)
                self._pulse()
        except MQTTError:
            pass  # the send already closed the connection
        except Exception as exc:  # a bug here must not leave a connection without keepalive
            self._die("ticker failed: %r" % (exc,))

    def _ping_due(self, now, half):
        # Idle sender: the broker needs a packet within keepalive. Silent broker while we
        # only send QoS 0: a PINGRESP is the only thing that proves it is still there. Either
        # way at most one PINGREQ per keepalive/2, and none while another packet is going out.
        if self._busy or ticks_diff(now, self._last_ping) < half:
            return False
        return ticks_diff(now, self._last_tx) >= half or ticks_diff(now, self._last_rx) >= half

    async def _retransmit(self, now):
        for pid in list(self._inflight):  # a copy: sending yields and the dict may change
            e = self._inflight.get(pid)
            if e is None or e[_E_STATE] == _DONE or e[_E_STATE] == _SENDING:
                continue
            if ticks_diff(now, e[_E_SENT]) < self._retry_ms:
                continue
            e[_E_SENT] = now
            self.stats["retransmits"] += 1
            if e[_E_STATE] == _WAIT_COMP:
                await self._send(None, (_PUBREL << 16) | pid)
            else:
                await self._send_publish(e[1], e[2], e[3], e[4], True, pid)

    # ---- reader -----------------------------------------------------------------------

    async def _read_loop(self):
        buf = self._buf
        mv = self._mv
        size = len(buf)
        t = self._t
        start = end = 0
        skip = 0  # bytes of an oversize packet still to drop
        reason = "connection closed by the broker (EOF)"
        r = t._r
        direct = t._has_readinto
        try:
            while True:
                if direct:  # MicroPython: straight into the buffer, one generator less
                    n = await r.readinto(mv[end:] if end else mv)
                    if n is None:  # a non-blocking miss (TLS needs more bytes), not EOF
                        continue
                else:
                    n = await t.readinto(mv[end:] if end else mv)
                if n <= 0:
                    break
                self._last_rx = ticks_ms()
                if skip:
                    if n <= skip:
                        skip -= n
                        continue
                    start, end, skip = skip, n, 0
                else:
                    end += n
                while end - start >= 2:
                    hs = header_size(buf, start, end)
                    if hs == 0:
                        break
                    if hs < 0:
                        raise _Malformed("remaining length longer than 4 bytes")
                    total = hs + remaining_length(buf, start)
                    if total > size:
                        skip = total - (end - start)
                        ack = self._oversize(start, hs, end)
                        start = end = 0
                        if ack:
                            await self._send(None, ack)
                        break
                    if end - start < total:
                        break
                    self.stats["packets_in"] += 1
                    ack = self._handle(buf[start] >> 4, buf[start] & 15, start + hs, total - hs)
                    start += total
                    if self._hold is not None:
                        await self._held()
                    if ack:
                        await self._send(None, ack)
                if start == end:
                    start = end = 0
                elif start:
                    end = move_down(buf, mv, start, end)
                    start = 0
        except _Malformed as exc:
            self.stats["protocol_errors"] += 1
            reason = "protocol error: %s" % exc
            _log.error("malformed packet from the broker: %s", exc)
        except MQTTError:
            return  # a send failed and closed the connection already
        except Exception as exc:
            reason = "read failed: %r" % (exc,)
        self._die(reason)

    async def _held(self):
        # on_message returned an awaitable (its handler queue is full): reading on waits
        # for it, so the broker's flow control, not our RAM, absorbs a burst.
        h = self._hold
        self._hold = None
        try:
            await h
        except Exception as exc:
            self.stats["callback_errors"] += 1
            _log.error("on_message raised %r", exc)

    def _oversize(self, start, hs, end):
        """Count a packet too big for the buffer; return the ack to send for it, or 0."""
        buf = self._buf
        self.stats["oversize_dropped"] += 1
        first = buf[start]
        _log.warning("dropped a packet larger than max_packet (%d bytes)", len(buf))
        qos = (first >> 1) & 3
        if first >> 4 != _PUBLISH or not qos or qos == 3:
            return 0
        off = start + hs
        if end - off < 2:
            return 0
        p = off + 2 + ((buf[off] << 8) | buf[off + 1])
        if end - p < 2:
            return 0
        pid = (buf[p] << 8) | buf[p + 1]
        return ((_PUBACK if qos == 1 else _PUBREC) << 16) | pid

    def _handle(self, ptype, flags, off, rl):
        """Act on one complete packet at buf[off:off+rl]; return an ack (type<<16|pid) or 0."""
        buf = self._buf
        if self._connack < 0 and ptype != _CONNACK:
            raise _Malformed("packet type %d before CONNACK" % ptype)
        if ptype == _PUBLISH:
            return self._on_publish(flags, off, rl)
        if flags != (2 if ptype == _PUBREL else 0):
            raise _Malformed("reserved flags %d in packet type %d" % (flags, ptype))
        if ptype == _PINGRESP:
            if rl:
                raise _Malformed("PINGRESP with a body")
            self.stats["pongs"] += 1
            return 0
        if ptype == _SUBACK:
            if rl < 3:
                raise _Malformed("short SUBACK")
        elif rl != 2:
            raise _Malformed("packet type %d with length %d" % (ptype, rl))
        pid = (buf[off] << 8) | buf[off + 1]
        if ptype == _PUBACK or ptype == _PUBCOMP:
            e = self._inflight.get(pid)
            if e is not None and e[3] == (1 if ptype == _PUBACK else 2):
                if ptype == _PUBACK or e[_E_STATE] == _WAIT_COMP:
                    e[_E_STATE] = _DONE
                    del self._inflight[pid]
                    self._pulse()
            return 0
        if ptype == _PUBREC:
            e = self._inflight.get(pid)
            if e is not None and e[3] == 2:
                e[_E_STATE] = _WAIT_COMP
                e[_E_SENT] = ticks_ms()
            # Released even when unknown (e.g. given up): the broker must not hold it forever.
            return (_PUBREL << 16) | pid
        if ptype == _PUBREL:
            self._rx_qos2.discard(pid)
            return (_PUBCOMP << 16) | pid
        if ptype == _SUBACK or ptype == _UNSUBACK:
            slot = self._pending.get(pid)
            if slot is not None:
                slot[0] = buf[off + 2] if ptype == _SUBACK else 0
                self._pulse()
            return 0
        if ptype == _CONNACK:
            if self._connack >= 0:
                raise _Malformed("second CONNACK")
            code = buf[off + 1]
            self._connack = code
            self._pulse()
            return 0
        raise _Malformed("unexpected packet type %d" % ptype)

    def _on_publish(self, flags, off, rl):
        buf = self._buf
        qos = (flags >> 1) & 3
        if qos == 3:
            raise _Malformed("PUBLISH with QoS 3")
        if rl < 2:
            raise _Malformed("short PUBLISH")
        tlen = (buf[off] << 8) | buf[off + 1]
        p = off + 2 + tlen
        if qos:
            p += 2
        if p > off + rl:
            raise _Malformed("topic length %d beyond the packet" % tlen)
        bad = topic_name_error(buf, off + 2, off + 2 + tlen)
        if bad is not None:
            raise _Malformed(bad)
        tv = self._mv[off + 2 : off + 2 + tlen]
        topic = bytes(tv) if self._bytes_topics else str(tv, "utf-8")
        pid = (buf[p - 2] << 8) | buf[p - 1] if qos else 0
        if qos == 2:
            if pid in self._rx_qos2:
                # A DUP of a message delivered but not yet released: exactly once means drop.
                self.stats["duplicates_dropped"] += 1
                return (_PUBREC << 16) | pid
            self._rx_qos2.add(pid)
        self.stats["messages_in"] += 1
        cb = self.on_message
        if cb is not None:
            try:
                r = cb(topic, bytes(self._mv[p : off + rl]), bool(flags & 1), qos)
                if r is not None and hasattr(r, "send"):  # a coroutine: await it
                    self._hold = r
            except Exception as exc:
                self.stats["callback_errors"] += 1
                _log.error("on_message raised %r", exc)
        if qos == 1:
            return (_PUBACK << 16) | pid
        if qos == 2:
            return (_PUBREC << 16) | pid
        return 0
