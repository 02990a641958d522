"""An in-process fake of the tether.mqtt contract plus a scripted Arduino cloud behind it.

Fast protocol tests for tether.arduino on both interpreters: no sockets, no TLS. The fake
client has the MQTTClient constructor, connect/subscribe/unsubscribe/publish, on_message,
connected, wait_closed, close and stats. The FakeCloud records everything the device sends
and answers discovery the way docs/protocols.md section 1.3 describes:

    cloud = FakeCloud(THING)                       # both flows answer
    client.mqtt_factory = cloud.factory
    cloud.write([{"n": "sw1", "vb": True}])        # a dashboard write on /a/t/{thing}/e/i

Messages the cloud sends go through an inbox drained by a reader task, as from a socket,
and are dropped (and counted) when larger than the client's max_packet, as tether.mqtt does.
"""

import asyncio

from tether import cbor, log, senml
from tether.cbor import Tag
from tether.mqtt import MQTTError

_log = log.getLogger("fake_mqtt")


class FakeMQTT:
    def __init__(
        self,
        cloud,
        client_id,
        server,
        port=1883,
        *,
        on_message=None,
        max_packet=16384,
        bytes_topics=False,
        user=None,
        password=None,
        **kw,
    ):
        self.cloud = cloud
        self.client_id = client_id
        self.server = server
        self.port = port
        self.kw = kw
        self.user = user
        self.password = password
        self.on_message = on_message
        self.max_packet = max_packet
        self.bytes_topics = bytes_topics
        self.connected = False
        self.subs = {}
        self.stats = {"oversize_dropped": 0, "messages_in": 0, "connects": 0}
        self._inbox = []
        self._reader = None

    async def connect(self):
        # One object per client, connected again and again (as tether.mqtt is reused).
        self.cloud.connects += 1
        self.cloud.logins.append((self.user, self.password))
        if self.cloud.refuse_connects > 0:
            self.cloud.refuse_connects -= 1
            raise OSError("connection refused (fake)")
        self.subs = {}
        self._inbox = []
        self._ev = asyncio.Event()
        self._closed = asyncio.Event()
        self.connected = True
        self.stats["connects"] += 1
        self.cloud.conn = self
        self._reader = asyncio.create_task(self._read())

    async def _read(self):
        while self.connected:
            while self._inbox and self.connected:
                topic, payload, qos = self._inbox.pop(0)
                if len(payload) + len(topic) + 8 > self.max_packet:
                    self.stats["oversize_dropped"] += 1
                    _log.warning("dropped a packet larger than max_packet (%d)", self.max_packet)
                    continue
                self.stats["messages_in"] += 1
                if self.on_message is not None:
                    t = topic.encode() if self.bytes_topics else topic
                    r = self.on_message(t, payload, False, qos)
                    if r is not None and hasattr(r, "send"):
                        await r  # the handler queue is full: wait, as tether.mqtt does
                await asyncio.sleep(0)
            self._ev.clear()
            await self._ev.wait()

    def inject(self, topic, payload, qos=1):
        self._inbox.append((topic, payload, qos))
        self._ev.set()

    def _check(self):
        if not self.connected:
            raise MQTTError("not connected (fake)")

    async def subscribe(self, topic, qos=0):
        self._check()
        topic = _str(topic)
        self.subs[topic] = qos
        self.cloud.on_subscribe(self, topic)
        await asyncio.sleep(0)
        return qos

    async def unsubscribe(self, topic):
        self._check()
        topic = _str(topic)
        self.subs.pop(topic, None)
        self.cloud.unsubscribed.append(topic)
        await asyncio.sleep(0)

    async def publish(self, topic, payload, qos=0, retain=False):
        self._check()
        topic = _str(topic)
        payload = bytes(payload)
        if self.cloud.fail_publishes > 0 and topic.endswith("/e/o"):
            # The connection dies with this publish in flight: no PUBACK ever comes.
            self.cloud.fail_publishes -= 1
            self.cloud.lost.append((topic, payload))
            self.close()
            raise MQTTError("connection lost before PUBACK (fake)")
        self.cloud.published.append((topic, payload, qos))
        self.cloud.on_publish(self, topic, payload)
        await asyncio.sleep(0)

    def close(self):
        if self.connected:
            self.connected = False
            self._ev.set()
            self._closed.set()

    async def disconnect(self):
        self.cloud.disconnects += 1
        self.close()

    async def wait_closed(self):
        if self.connected:
            await self._closed.wait()


def _str(topic):
    return topic.decode() if isinstance(topic, (bytes, bytearray)) else topic


class FakeCloud:
    """A scripted Arduino IoT Cloud for one device.

    legacy / command: which discovery flows answer. last_values: the pack (list of record
    dicts) sent for getLastValues / LastValuesBegin. thing_id may be "" (not linked).
    """

    def __init__(self, thing_id, device_id=None, legacy=True, command=True, last_values=None):
        self.thing_id = thing_id
        self.device_id = device_id
        self.legacy = legacy
        self.command = command
        self.last_values = last_values or []
        self.conn = None
        self.connects = 0
        self.refuse_connects = 0
        self.fail_publishes = 0
        self.factories = 0  # MQTT client objects made (one per device client)
        self.logins = []  # (user, password) of every connect
        self.disconnects = 0  # DISCONNECTs (planned renewals)
        self.published = []  # (topic, payload, qos) the device sent and the cloud acked
        self.lost = []  # publishes that died in flight
        self.unsubscribed = []

    def factory(self, client_id, server, port=1883, **kw):
        self.factories += 1
        if self.device_id is None:
            self.device_id = client_id
        return FakeMQTT(self, client_id, server, port, **kw)

    # -- what the device sent ------------------------------------------------------------

    def sent(self, leaf):
        """Payloads the device published on topics ending with leaf."""
        return [p for (t, p, q) in self.published if t.endswith(leaf)]

    def pushes(self):
        """Decoded packs pushed on the thing's e/o topic."""
        return [senml.decode(p) for p in self.sent("/e/o")]

    def pushed_values(self):
        """name -> last pushed value."""
        out = {}
        for pack in self.pushes():
            for r in pack:
                out[r["n"]] = senml.value_of(r)
        return out

    # -- answering -------------------------------------------------------------------------

    def dev(self, leaf):
        return "/a/d/%s/%s" % (self.device_id, leaf)

    def thing(self, leaf, thing_id=None):
        return "/a/t/%s/%s" % (thing_id or self.thing_id, leaf)

    def on_subscribe(self, conn, topic):
        if self.legacy and topic == self.dev("e/i") and self.thing_id is not None:
            conn.inject(topic, senml.encode([{"n": "thing_id", "vs": self.thing_id}]))

    def on_publish(self, conn, topic, payload):
        if topic == self.dev("c/up"):
            msg = cbor.loads(payload)
            if msg.tag == 0x010300 and self.command and self.thing_id is not None:
                self.send_command(0x010400, [self.thing_id])
            elif msg.tag == 0x010500 and self.command:
                self.send_command(0x010600, [senml.encode(self.last_values)])
        elif topic == self.thing("shadow/o") and self.legacy:
            self.send(self.thing("shadow/i"), senml.encode(self.last_values))

    def send(self, topic, payload, qos=1):
        """Deliver a message if the device subscribed to the topic (as a broker would)."""
        conn = self.conn
        if conn is not None and conn.connected and topic in conn.subs:
            conn.inject(topic, payload, qos)
            return True
        return False

    def send_command(self, tag, args):
        return self.send(self.dev("c/dw"), cbor.dumps(Tag(tag, args)))

    def write(self, records, thing_id=None):
        return self.send(self.thing("e/i", thing_id), senml.encode(records))

    def kill(self):
        """Drop the connection (broker restart, WiFi loss)."""
        if self.conn is not None:
            self.conn.close()


async def until(pred, timeout_ms=3000, step_ms=5):
    """Wait (bounded) until pred() is true; returns pred()'s final value."""
    waited = 0
    while not pred():
        if waited >= timeout_ms:
            return pred()
        await asyncio.sleep(step_ms / 1000)
        waited += step_ms
    return True
