"""The malformed-message corpus through the REAL tether.mqtt client, on both interpreters.

dt_arduino_corpus.py sends the corpus through fake_mqtt, which re-implements the oversize
drop; here every payload is a real PUBLISH packet read by tether.mqtt.MQTTClient from a
scripted broker (scripted_broker.py), so the receive buffer, the oversize drain, the QoS 1
acknowledgement and the on_message guard are the ones a board runs. For every payload on
every cloud -> device topic: the client stays connected (same connection, no reconnect),
the message is counted (by the client, or as oversize by the MQTT layer) and logged, and a
valid write sent right after reaches on_write.

Memory (the unix port's 2 MB heap): big payloads are never built into a packet; the PUBLISH
header is sent, then the payload in 4 KB slices, each read before the next is queued.
"""

import asyncio
import gc

from dt_arduino_corpus import DEV, THING, Sink, _refusals, corpus
from dt_arduino_wire import parse_publish, parse_subscribe
from harness import run
from scripted_broker import (
    ScriptedBroker,
    connack,
    pingresp,
    puback,
    publish,
    suback,
    unsuback,
    varint,
)
from tether import log, senml
from tether.arduino import ArduinoCloudClient

_CHUNK = 4096
_TOPICS = {
    "thing e/i": "/a/t/%s/e/i" % THING,
    "shadow/i": "/a/t/%s/shadow/i" % THING,
    "c/dw": "/a/d/%s/c/dw" % DEV,
    "device e/i": "/a/d/%s/e/i" % DEV,
}


class _Cloud:
    """Answers what the client writes (CONNACK, SUBACK, PUBACK, UNSUBACK, PINGRESP) and gives
    the thing id the legacy way, on SUBSCRIBE to /a/d/{dev}/e/i, so shadow/i is subscribed."""

    def __init__(self, broker):
        self.broker = broker
        self.subs = []
        self.acked = []  # packet ids the client acknowledged
        self.pid = 0
        self._feeding = False
        self._held = []  # replies held back while a packet is being streamed

    def _reply(self, data):
        # A reply must not land in the middle of a packet that feed() is streaming.
        if self._feeding:
            self._held.append(data)
        else:
            self.broker.send(data)

    def next_pid(self):
        self.pid = self.pid % 65535 + 1
        return self.pid

    async def serve(self):
        b = self.broker
        while True:
            try:
                pkt = await b.recv_packet(600000)
            except AssertionError:
                continue
            kind = pkt[0] >> 4
            if kind == 1:
                self._reply(connack())
            elif kind == 8:
                pid, topic, qos = parse_subscribe(pkt)
                self.subs.append(topic)
                self._reply(suback(pid, 1))
                if topic == _TOPICS["device e/i"]:
                    pack = senml.encode([{"n": "thing_id", "vs": THING}])
                    self._reply(publish(topic, pack, qos=1, pid=self.next_pid()))
            elif kind == 3:
                topic, qos, pid, body = parse_publish(pkt)
                if qos:
                    self._reply(puback(pid))
            elif kind == 4:
                self.acked.append((pkt[2] << 8) | pkt[3])
            elif kind == 10:
                self._reply(unsuback((pkt[2] << 8) | pkt[3]))
            elif kind == 12:
                self._reply(pingresp())

    async def feed(self, topic, payload, qos=1):
        """One PUBLISH, its payload streamed in slices so no packet-sized copy is made."""
        b = self.broker
        t = topic.encode()
        pid = self.next_pid() if qos else 0
        rest = 2 + len(t) + (2 if qos else 0) + len(payload)
        head = bytearray([0x30 | (qos << 1)]) + varint(rest)
        head += bytes([len(t) >> 8, len(t) & 0xFF]) + t
        if qos:
            head += bytes([pid >> 8, pid & 0xFF])
        self._feeding = True
        try:
            b.send(head)
            mv = memoryview(payload)
            for i in range(0, len(payload), _CHUNK):
                await self._drained()
                b.send(mv[i : i + _CHUNK])
            await self._drained()
        finally:
            self._feeding = False
        for data in self._held:
            b.send(data)
        self._held = []
        return pid

    async def _drained(self):
        # The client has read everything queued (bounded: 2 s).
        for _ in range(2000):
            if not self.broker._inbox:
                return
            await asyncio.sleep(0.001)
        raise AssertionError("the client stopped reading")


async def _until(pred, ms):
    for _ in range(ms // 2):
        if pred():
            return True
        await asyncio.sleep(0.002)
    return pred()


def _run_topic(kind):
    broker = ScriptedBroker()
    cloud = _Cloud(broker)
    client = ArduinoCloudClient(device_id=DEV, username=DEV, password="pw")
    client.open_connection = broker.open_connection
    client.LAST_VALUES_MS = 60000
    writes = []
    client.register("sw1", value=False, on_write=lambda c, v: writes.append(v))
    sink = Sink()
    failures = []
    topic = _TOPICS[kind]
    write_topic = _TOPICS["thing e/i"]

    async def body():
        server = asyncio.create_task(cloud.serve())
        task = asyncio.create_task(client.run())
        try:
            assert await _until(lambda: client.connected, 3000), client.stats()
            assert await _until(lambda: write_topic in cloud.subs, 1000), cloud.subs
            assert "/a/t/%s/shadow/i" % THING in cloud.subs, cloud.subs
            mqtt = client.mqtt
            value = False
            log.basicConfig(stream=sink)
            try:
                for name, payload in corpus():
                    before = _refusals(client, mqtt)
                    logged = sink.lines
                    await cloud.feed(topic, payload)
                    payload = None
                    gc.collect()
                    value = not value
                    n = len(writes)
                    pid = await cloud.feed(write_topic, senml.encode([{"n": "sw1", "vb": value}]))
                    ok = await _until(lambda n=n: len(writes) > n, 2000) and writes[-1] is value
                    if not ok:
                        failures.append("%s: the write after it did not arrive" % name)
                    if not await _until(lambda pid=pid: pid in cloud.acked, 1000):
                        failures.append("%s: the write after it was not acknowledged" % name)
                    if client.mqtt is not mqtt or not mqtt.connected or not client.connected:
                        failures.append("%s: connection lost" % name)
                        break
                    if _refusals(client, mqtt) <= before:
                        failures.append("%s: not counted" % name)
                    if sink.lines <= logged:
                        failures.append("%s: not logged" % name)
            finally:
                log.basicConfig()
            client.stop()
            assert await _until(lambda: task.done(), 2000)
        finally:
            server.cancel()
            task.cancel()
        return mqtt.stats

    stats = run(body(), 60)
    assert not failures, "\n".join(failures)
    assert len(broker.opened) == 1 and client.counters["reconnects"] == 0
    assert stats["protocol_errors"] == 0
    # The big ones really went through the MQTT layer's drain, not the decoder.
    assert stats["oversize_dropped"] >= 3, stats


def test_corpus_on_thing_e_i_through_the_real_mqtt_client():
    _run_topic("thing e/i")


def test_corpus_on_thing_shadow_i_through_the_real_mqtt_client():
    _run_topic("shadow/i")


def test_corpus_on_device_c_dw_through_the_real_mqtt_client():
    _run_topic("c/dw")


def test_corpus_on_device_e_i_through_the_real_mqtt_client():
    _run_topic("device e/i")
