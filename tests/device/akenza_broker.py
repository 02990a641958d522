"""A scripted akenza broker for the device tests (both interpreters; no sockets, no TLS).

Plays the broker for one AkenzaClient over tests/device/scripted_broker.py: records every
CONNECT (client id, username, password), SUBSCRIBE and PUBLISH, answers CONNACK (or the
refusal code in `refuse`), SUBACK, PUBACK, PINGRESP, and sends downlinks. It checks
nothing about the JWT: the tests decode it themselves, and tests/test_akenza_client.py runs
the client against the emulator, which verifies it with PyJWT.
"""

import asyncio

from scripted_broker import ScriptedBroker, connack, pingresp, puback, publish, suback
from tether.compat import ticks_diff, ticks_ms


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
    while p < len(b):
        n = _u16(b, p)
        fields.append(bytes(b[p + 2 : p + 2 + n]).decode())
        p += 2 + n
    cid = fields.pop(0)
    if flags & 0x04:
        fields = fields[2:]  # will topic and message
    user = fields.pop(0) if flags & 0x80 else None
    password = fields.pop(0) if flags & 0x40 else None
    return cid, user, password


def parse_publish(pkt):
    """(topic, qos, pid, payload) of a PUBLISH packet."""
    qos = (pkt[0] >> 1) & 3
    i = 1
    while pkt[i] & 0x80:
        i += 1
    body = pkt[i + 1 :]
    n = _u16(body, 0)
    topic = bytes(body[2 : 2 + n]).decode()
    p = 2 + n
    pid = 0
    if qos:
        pid = _u16(body, p)
        p += 2
    return topic, qos, pid, bytes(body[p:])


def parse_subscribe(pkt):
    i = 1
    while pkt[i] & 0x80:
        i += 1
    body = pkt[i + 1 :]
    n = _u16(body, 2)
    return _u16(body, 0), bytes(body[4 : 4 + n]).decode(), body[4 + n]


class AkenzaBroker:
    def __init__(self):
        self.b = ScriptedBroker()
        self.open_connection = self.b.open_connection
        self.logins = []  # (client_id, user, password) per CONNECT
        self.events = []  # ("connect" | "disconnect", ticks_ms)
        self.up = []  # (topic, payload bytes) of every PUBLISH from the device
        self.subs = []
        self.refuse = 0  # a CONNACK code to answer with instead of 0
        self._pid = 100

    def events_of(self, kind):
        return [t for k, t in self.events if k == kind]

    async def serve(self):
        b = self.b
        while True:
            try:
                pkt = await b.recv_packet(600000)
            except AssertionError:
                continue
            kind = pkt[0] >> 4
            if kind == 1:
                self.logins.append(parse_connect(pkt))
                self.events.append(("connect", ticks_ms()))
                b.send(connack(self.refuse))
                if self.refuse:
                    b.send_eof()
            elif kind == 8:
                pid, topic, qos = parse_subscribe(pkt)
                self.subs.append(topic)
                b.send(suback(pid, qos))
            elif kind == 3:
                topic, qos, pid, body = parse_publish(pkt)
                self.up.append((topic, body))
                if qos:
                    b.send(puback(pid))
            elif kind == 12:
                b.send(pingresp())
            elif kind == 14:
                self.events.append(("disconnect", ticks_ms()))

    def down(self, topic, payload, qos=1):
        if isinstance(payload, str):
            payload = payload.encode()
        self._pid += 1
        self.b.send(publish(topic, payload, qos=qos, pid=self._pid if qos else 0))


async def until(pred, ms):
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


async def stop(client, tasks):
    client.stop()
    assert await until(lambda: tasks[0].done(), 3000)
    for t in tasks[1:]:
        t.cancel()
