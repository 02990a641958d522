"""The broker half every scripted cloud test needs (both interpreters; no sockets, no TLS).

`CloudBroker` plays an MQTT broker for one client over tests/device/scripted_broker.py: it
records every CONNECT (`logins`: client id, username, password), connect and disconnect
(`events`), SUBSCRIBE (`subs`) and PUBLISH (`up`: topic and payload bytes), and answers
CONNACK (or the refusal code in `refuse`, then end of stream, as a broker closes after a
refusal), SUBACK, PUBACK and PINGRESP. A cloud's test broker subclasses it and overrides
`on_publish()` to answer like its cloud (SAP's acks, say); `down()` sends to the device.

Start `serve()` as a task yourself, or let `open_connection()` start it on the loop that
connects (`autostart=True`; the sync clients run their own loop).
"""

import asyncio
import json

from dt_arduino_wire import parse_publish, parse_subscribe
from scripted_broker import ScriptedBroker, connack, pingresp, puback, publish, suback
from tether.compat import ticks_diff, ticks_ms

_CONNECT = 1  # MQTT packet types (plain ints: test code)
_PUBLISH = 3
_SUBSCRIBE = 8
_PINGREQ = 12
_DISCONNECT = 14


def _u16(b, i):
    return (b[i] << 8) | b[i + 1]


def parse_connect(pkt):
    """(client_id, username, password) of a CONNECT packet (None when absent)."""
    i = 1
    while pkt[i] & 0x80:
        i += 1
    b = pkt[i + 1 :]
    flags = b[7]
    p = 10
    fields = []
    while p < len(b):  # client id, [will topic, will message], [user], [password]
        n = _u16(b, p)
        fields.append(bytes(b[p + 2 : p + 2 + n]).decode())
        p += 2 + n
    cid = fields.pop(0)
    if flags & 0x04:
        fields = fields[2:]
    user = fields.pop(0) if flags & 0x80 else None
    password = fields.pop(0) if flags & 0x40 else None
    return cid, user, password


class CloudBroker:
    def __init__(self, autostart=False):
        self.b = ScriptedBroker()
        self.logins = []  # (client_id, user, password) per CONNECT
        self.events = []  # ("connect" | "disconnect", ticks_ms)
        self.subs = []
        self.up = []  # (topic, payload bytes) of every PUBLISH from the device
        self.refuse = 0  # a CONNACK code to answer with instead of 0
        self.task = None
        self._autostart = autostart
        self._pid = 100

    async def open_connection(self, *args, **kw):
        if self._autostart and self.task is None:
            self.task = asyncio.create_task(self.serve())
        # What the old connection wrote and serve() has not read yet (its DISCONNECT, when
        # the client reconnects at once) is handled now: a new connection starts empty.
        b = self.b
        while b._packet_len():
            n = b._packet_len()
            pkt, b.written = bytes(b.written[:n]), b.written[n:]
            self._handle(pkt)
        return await b.open_connection(*args, **kw)

    def events_of(self, kind):
        return [t for k, t in self.events if k == kind]

    def on_publish(self, topic, body):
        """Called after a device PUBLISH is recorded and acknowledged."""

    async def serve(self):
        while True:
            try:
                pkt = await self.b.recv_packet(600000)
            except AssertionError:
                continue
            self._handle(pkt)

    def _handle(self, pkt):
        b = self.b
        kind = pkt[0] >> 4
        if kind == _CONNECT:
            self.logins.append(parse_connect(pkt))
            self.events.append(("connect", ticks_ms()))
            b.send(connack(self.refuse))
            if self.refuse:
                b.send_eof()
        elif kind == _SUBSCRIBE:
            pid, topic, qos = parse_subscribe(pkt)
            self.subs.append(topic)
            b.send(suback(pid, qos))
        elif kind == _PUBLISH:
            topic, qos, pid, body = parse_publish(pkt)
            body = bytes(body)
            self.up.append((topic, body))
            if qos:
                b.send(puback(pid))
            self.on_publish(topic, body)
        elif kind == _PINGREQ:
            b.send(pingresp())
        elif kind == _DISCONNECT:
            self.events.append(("disconnect", ticks_ms()))

    def down(self, topic, payload, qos=1):
        """Publish to the device: bytes or str as they are, anything else as JSON."""
        if not isinstance(payload, (bytes, bytearray, str)):
            payload = json.dumps(payload)
        if isinstance(payload, str):
            payload = payload.encode()
        self._pid += 1
        self.b.send(publish(topic, payload, qos=qos, pid=self._pid if qos else 0))

    def stop(self):
        if self.task is not None:
            self.task.cancel()


async def until(pred, ms):
    """Wait until pred() is true; False after ms milliseconds."""
    t0 = ticks_ms()
    while not pred():
        if ticks_diff(ticks_ms(), t0) > ms:
            return False
        await asyncio.sleep(0.005)
    return True


def fast(client, broker):
    """Point the client at the scripted broker, with short backoffs."""
    client.open_connection = broker.open_connection
    client.session.backoff_min_ms = 10
    client.session.backoff_max_ms = 20
    return client
