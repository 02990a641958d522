"""Asyncio MQTT 3.1.1 client for MicroPython and CPython: QoS 0/1/2 both ways, keepalive.

    client = MQTTClient("dev1", "broker.example", 8883, ssl=ctx, keepalive=30,
                        on_message=lambda topic, payload, retain, qos: print(topic, payload))
    await client.connect()
    await client.subscribe("cmd/#", qos=1)
    await client.publish("data", b"42", qos=1)   # returns after PUBACK
    await client.wait_closed()                    # returns when the connection died

One connection per connect(); the session layer reconnects (a new connect() on the same
object starts with an empty in-flight window: unacknowledged messages of the dead
connection have already failed with MQTTError, and the caller decides what to resend).
With clean_session=False, `session_present` is the CONNACK's flag; a resumed session gets
PUBREL for the QoS 2 sends the last connection left incomplete (the broker would swallow a
new message with such an id), and incoming QoS 2 ids are kept (no double delivery).
Two tasks run while connected: the reader (parses packets from one preallocated buffer of
max_packet bytes) and the ticker (keepalive, dead-connection detection, DUP retransmission,
and the wake-up that bounds every wait).

Failure modes:
- EOF, a read/write error, 1.5 x keepalive without any packet from the broker, or a
  malformed packet: the connection is closed, `wait_closed()` returns, `close_reason` says
  why, and every pending publish()/subscribe() raises MQTTError.
- A packet larger than max_packet is read in buffer-sized chunks and dropped without being
  allocated (stats["oversize_dropped"]); the connection stays up. If it was a QoS 1/2
  PUBLISH whose packet id fits in the first chunk, it is acknowledged so the broker does not
  hold its in-flight slot forever.
- on_message raising: logged, stats["callback_errors"] += 1, connection kept.
"""

import asyncio

from tether import log
from tether.compat import const, ticks_add, ticks_diff, ticks_ms
from tether.mqtt_packet import (  # noqa: F401 (MQTTConnectError: imported from here)
    DISCONNECT_PACKET,
    MQTTConnectError,
    MQTTError,
    connect_packet,
    subscribe_packet,
    unsubscribe_packet,
)
from tether.mqtt_reader import Incoming
from tether.mqtt_stream import Transport, set_nodelay, wait_for_ms
from tether.mqtt_writer import Outgoing

_log = log.getLogger("mqtt")

# Packet types (duplicated from mqtt_packet as module-private consts: no RAM, no lookups).
_CONNACK = const(2)
_PUBLISH = const(3)
_PUBACK = const(4)
_PUBREC = const(5)
_PUBREL = const(6)
_PUBCOMP = const(7)
_SUBACK = const(9)
_UNSUBACK = const(11)
_PINGRESP = const(13)

# In-flight entry: [state, topic, payload, qos, retain, last_sent_ticks]
_DONE = const(0)
_WAIT_ACK = const(1)  # PUBACK (QoS 1) or PUBREC (QoS 2)
_WAIT_COMP = const(2)  # PUBREL sent, PUBCOMP awaited
_SENDING = const(3)  # waiting for the writer: not due for retransmission yet
_E_STATE = const(0)
_E_SENT = const(5)

_TX_SIZE = const(256)  # a PUBLISH that fits goes out in one write (one TCP segment)
_ETIMEDOUT = const(110)


class MQTTClient(Incoming, Outgoing):
    def __init__(
        self,
        client_id,
        server,
        port=1883,
        *,
        user=None,
        password=None,
        keepalive=60,
        ssl=None,
        server_hostname=None,
        will=None,
        clean_session=True,
        max_packet=16384,
        max_inflight=8,
        connect_timeout_ms=10000,
        ack_timeout_ms=30000,
        retry_ms=5000,
        on_message=None,
        open_connection=None,
        bytes_topics=False,
        buffer=None,
    ):
        if max_packet < 64:
            raise ValueError("max_packet")
        self.client_id = client_id
        self.server = server
        self.port = port
        self.user = user  # both may change between connects (fresh credentials)
        self.password = password
        self._keepalive = keepalive
        if ssl is True:  # asyncio's ssl=True verifies nothing on MicroPython: never pass it on
            from tether import tlsctx

            ssl = tlsctx.client_context()  # verifying (CPython: system store; MicroPython: error)
        self._ssl = ssl
        self._server_hostname = server_hostname
        self._will = will
        self._clean = clean_session  # may change between connects (a profile's choice)
        self.session_present = False  # CONNACK's flag for the last connect
        self._unreleased = ()  # QoS 2 ids the broker may still hold from the last connection
        self._max_inflight = max(1, max_inflight)
        self._connect_timeout = connect_timeout_ms
        self._ack_timeout = ack_timeout_ms
        self._retry_ms = retry_ms
        self.on_message = on_message
        self._bytes_topics = bytes_topics  # on_message gets the topic as bytes, not str
        self._hold = None  # what on_message asked the reader to await (backpressure)
        self._open = open_connection
        # The big buffers are allocated once, here, while the heap is still unfragmented;
        # or earlier by the caller (`buffer`, a bytearray of max_packet bytes or more).
        self._buf = buffer if buffer is not None else bytearray(max_packet)
        self._mv = memoryview(self._buf)
        self._tx = bytearray(_TX_SIZE)
        self._txmv = memoryview(self._tx)
        self._ackbuf = bytearray(4)
        ka_ms = keepalive * 1000
        self._tick_ms = max(20, min(500, (ka_ms // 8) if ka_ms else 500, retry_ms // 4))
        self.connected = False
        self.close_reason = None
        self.nodelay = False  # True when we disabled Nagle ourselves (MicroPython, plain TCP)
        self._alive = False
        self._closing = False
        self._busy = False
        self._wr_waiting = 0
        self._t = None
        self._reader_task = None
        self._tick_task = None
        # Created in connect(), inside the running loop (CPython 3.9 binds Events at creation).
        self._ev = None  # pulsed on every ack, tick and death: waiters re-check
        self._closed_ev = None
        self._pid = 0
        self._inflight = {}
        self._pending = {}
        self._rx_qos2 = set()
        self._connack = -1
        self._last_rx = self._last_tx = self._last_ping = ticks_ms()
        self.stats = {
            "connects": 0,
            "packets_in": 0,
            "packets_out": 0,
            "messages_in": 0,
            "messages_out": 0,
            "oversize_dropped": 0,
            "callback_errors": 0,
            "protocol_errors": 0,
            "retransmits": 0,
            "duplicates_dropped": 0,
            "pings": 0,
            "pongs": 0,
        }

    # ---- connection lifecycle -------------------------------------------------------

    async def connect(self):
        """Open the stream, send CONNECT, return after CONNACK accepted.

        Raises MQTTConnectError (refused, `.code`), OSError (network; ETIMEDOUT when the
        TCP/TLS connect takes longer than connect_timeout_ms) or MQTTError (no CONNACK in
        time, connection closed, protocol error)."""
        if self._alive:
            raise MQTTError("already connected")
        self._inflight = {}
        self._pending = {}
        self._connack = -1  # _rx_qos2 is kept until CONNACK: a resumed session may need it
        self.session_present = False
        self.close_reason = None
        self._ev = asyncio.Event()
        self._closed_ev = asyncio.Event()
        t0 = ticks_ms()
        deadline = ticks_add(t0, self._connect_timeout)
        opener = self._open or asyncio.open_connection
        kw = {}
        if self._ssl is not None:
            kw["ssl"] = self._ssl
            if self._server_hostname is not None:
                kw["server_hostname"] = self._server_hostname
        try:
            reader, writer = await wait_for_ms(
                opener(self.server, self.port, **kw), self._connect_timeout
            )
        except asyncio.TimeoutError:
            raise OSError(_ETIMEDOUT, "connect to %s:%d timed out" % (self.server, self.port))
        self._t = Transport(reader, writer)
        self.nodelay = set_nodelay(writer) if self._ssl is None else False
        self._alive = True
        self._closing = False
        self._busy = False
        self._last_rx = self._last_tx = self._last_ping = ticks_ms()
        self._handle = self._first_packet  # the CONNACK's flag, then the reader's own
        self._reader_task = asyncio.create_task(self._read_loop())
        self._tick_task = asyncio.create_task(self._tick_loop())
        sender = None
        try:
            pkt = connect_packet(
                self.client_id, self._keepalive, self.user, self.password, self._will, self._clean
            )
            # The CONNECT goes out from a task of its own: over TLS the write carries the
            # handshake, and a peer that swallows everything (a black hole) would hold it
            # forever. Waiting here instead ends with the connect deadline or when the
            # ticker declares the connection dead (1.5 x keepalive), whichever comes first.
            sender = asyncio.create_task(self._send_connect(pkt))
            del pkt
            while self._connack < 0:
                self._check(deadline, "CONNACK")
                await self._ev.wait()
        except BaseException:
            self._die("connect failed")
            raise
        finally:
            if sender is not None and not sender.done():
                sender.cancel()
        code = self._connack
        if code:
            self._die("connection refused")
            raise MQTTConnectError(code)
        if self.session_present:  # [MQTT-4.4.0-1]: released before anything new goes out
            for pid in self._unreleased:
                await self._send(None, (_PUBREL << 16) | pid)
        self._unreleased = ()
        self.connected = True
        self.stats["connects"] += 1
        _log.info(
            "connected to %s:%d in %d ms", self.server, self.port, ticks_diff(ticks_ms(), t0)
        )

    def _first_packet(self, ptype, flags, off, rl):
        # Runs for the first packet only (an instance attribute over the reader's _handle,
        # removed here): the session-present flag costs nothing per packet later.
        del self._handle
        if ptype == _CONNACK and rl == 2 and not self._clean and not self._buf[off + 1]:
            self.session_present = self._buf[off] & 1 == 1
        if not self.session_present:
            self._rx_qos2 = set()  # a new session: the broker resends none of those
        return self._handle(ptype, flags, off, rl)

    async def _send_connect(self, pkt):
        try:
            await self._send(pkt)
        except Exception:
            pass  # the write failed and closed the connection: connect() sees it
        self._pulse()

    async def disconnect(self):
        """Send DISCONNECT (bounded by connect_timeout_ms) and close: no will is published."""
        if self._alive:
            self.connected = False  # nothing new goes out after DISCONNECT
            self._closing = True  # the broker's EOF that follows is expected
            try:
                await wait_for_ms(self._send(DISCONNECT_PACKET), self._connect_timeout)
            except Exception:
                pass
        self._die("disconnected by the application", True)

    def close(self):
        """Abort the connection at once (the broker publishes the will, if any)."""
        self._die("closed by the application", True)

    async def wait_closed(self):
        """Return when the connection has died (at once if it is not open)."""
        if self._alive:
            await self._closed_ev.wait()

    def _die(self, reason, expected=False):
        if not self._alive:
            return
        self._alive = False
        self.connected = False
        if not self._clean and not self._connack:  # QoS 2 not complete: released on resuming
            self._unreleased = [pid for pid, e in self._inflight.items() if e[3] == 2]
        if self._closing:
            reason, expected = "disconnected by the application", True
        self.close_reason = reason
        (_log.info if expected else _log.warning)("connection closed: %s", reason)
        try:
            cur = asyncio.current_task()
        except RuntimeError:  # CPython, close() called with no loop running
            cur = None
        for task in (self._reader_task, self._tick_task):
            if task is not None and task is not cur and not task.done():
                task.cancel()
        self._t.abort()
        self._pulse()
        self._closed_ev.set()

    # ---- waiting ----------------------------------------------------------------------

    def _pulse(self):
        # Wakes every waiter once; each re-checks its own condition and deadline.
        self._ev.set()
        self._ev.clear()

    def _check(self, deadline, what):
        # Called before every `await self._ev.wait()`: raises when the wait is over.
        if not self._alive:
            raise MQTTError("connection lost waiting for %s: %s" % (what, self.close_reason))
        if ticks_diff(deadline, ticks_ms()) <= 0:
            raise MQTTError("timed out waiting for " + what)

    def _deadline(self, timeout_ms):
        return ticks_add(ticks_ms(), self._ack_timeout if timeout_ms is None else timeout_ms)

    def _new_pid(self):
        pid = self._pid
        while True:
            pid = pid + 1 if pid < 65535 else 1
            if pid not in self._inflight and pid not in self._pending:
                self._pid = pid
                return pid

    # ---- public operations ------------------------------------------------------------

    async def subscribe(self, topic, qos=0, timeout_ms=None):
        """Subscribe to one filter; return the granted QoS (MQTTError if refused)."""
        if qos not in (0, 1, 2):
            raise ValueError("qos")
        code = await self._request(subscribe_packet, topic, qos, timeout_ms, "SUBACK")
        if code == 0x80:
            raise MQTTError("subscription to %s refused" % topic)
        return code

    async def unsubscribe(self, topic, timeout_ms=None):
        await self._request(unsubscribe_packet, topic, None, timeout_ms, "UNSUBACK")

    async def _request(self, build, topic, qos, timeout_ms, what):
        if not self.connected:
            raise MQTTError("not connected")
        deadline = self._deadline(timeout_ms)
        pid = self._new_pid()
        slot = [-1]
        self._pending[pid] = slot
        try:
            await self._send(build(pid, topic, qos) if qos is not None else build(pid, topic))
            while slot[0] < 0:
                self._check(deadline, what)
                await self._ev.wait()
        finally:
            if self._pending.get(pid) is slot:
                del self._pending[pid]
        return slot[0]

    def publish(self, topic, payload, qos=0, retain=False, timeout_ms=None):
        """Publish (await it); QoS 1 returns after PUBACK, QoS 2 after PUBCOMP.

        At most max_inflight QoS 1/2 publishes are outstanding; further calls wait for a
        slot. Waiting for the slot and for the acknowledgement is bounded by timeout_ms
        (default ack_timeout_ms); on timeout the message is given up (MQTTError). An
        unacknowledged PUBLISH/PUBREL is sent again with DUP every retry_ms meanwhile.
        The payload object is kept (not copied) until then: do not modify it.

        A plain function returning the coroutine that does the work: one coroutine frame
        less per message on MicroPython. Only a bad `qos` raises at the call itself."""
        if qos not in (0, 1, 2):
            raise ValueError("qos")
        if isinstance(topic, str):
            topic = topic.encode()
        if isinstance(payload, str):
            payload = payload.encode()
        if not qos:
            return self._send_publish(topic, payload, 0, retain, False, 0)
        return self._publish_acked(topic, payload, qos, retain, timeout_ms)

    async def _publish_acked(self, topic, payload, qos, retain, timeout_ms):
        if not self.connected:
            raise MQTTError("not connected")
        deadline = self._deadline(timeout_ms)
        while len(self._inflight) >= self._max_inflight or not self._alive:
            self._check(deadline, "a free in-flight slot")
            await self._ev.wait()
        pid = self._new_pid()
        entry = [_SENDING, topic, payload, qos, retain, 0]
        inflight = self._inflight
        inflight[pid] = entry
        try:
            await self._send_publish(topic, payload, qos, retain, False, pid)
            entry[_E_SENT] = ticks_ms()
            if entry[_E_STATE] == _SENDING:  # the ack may already be in
                entry[_E_STATE] = _WAIT_ACK
            while entry[_E_STATE] != _DONE:
                self._check(deadline, "PUBACK" if qos == 1 else "PUBCOMP")
                await self._ev.wait()
        finally:
            if inflight.get(pid) is entry:
                del inflight[pid]
                self._pulse()  # a window slot is free
