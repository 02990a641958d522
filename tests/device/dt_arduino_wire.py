"""ArduinoCloudClient over the real tether.mqtt client and a scripted broker, byte for byte.

Both interpreters. The broker side is played packet by packet: CONNECT, the subscriptions,
DeviceBegin/ThingBegin, ThingUpdate, LastValuesBegin/LastValuesUpdate, a push, a write;
then a connection that dies before the push's PUBACK, and the push again after reconnect.
"""

import asyncio

from harness import run
from scripted_broker import ScriptedBroker, connack, puback, publish, suback
from tether import cbor, senml
from tether.arduino import ArduinoCloudClient
from tether.cbor import Tag

DEV = "3a1c5e1e-7d1b-4c2e-9f00-7e57e7e57001"
THING = "5f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
H = bytes.fromhex


def _u16(b, i):
    return (b[i] << 8) | b[i + 1]


def _body(pkt):
    i = 1
    while pkt[i] & 0x80:
        i += 1
    return pkt[i + 1 :]


def parse_publish(pkt):
    """(topic, qos, pid, payload) of a PUBLISH packet."""
    assert pkt[0] >> 4 == 3, pkt
    qos = (pkt[0] >> 1) & 3
    body = _body(pkt)
    n = _u16(body, 0)
    topic = str(body[2 : 2 + n], "utf-8")
    p = 2 + n
    pid = 0
    if qos:
        pid = _u16(body, p)
        p += 2
    return topic, qos, pid, body[p:]


def parse_subscribe(pkt):
    """(pid, topic, qos) of a one-topic SUBSCRIBE."""
    assert pkt[0] == 0x82, pkt
    body = _body(pkt)
    n = _u16(body, 2)
    return _u16(body, 0), str(body[4 : 4 + n], "utf-8"), body[4 + n]


def _client(broker):
    client = ArduinoCloudClient(device_id=DEV, username=DEV, password="s3cret")
    client.open_connection = broker.open_connection
    client.session.backoff_min_ms = 10
    client.session.backoff_max_ms = 20
    return client


async def _sub(broker, topic):
    pid, got, qos = parse_subscribe(await broker.recv_packet())
    assert (got, qos) == (topic, 1), (got, qos)
    broker.send(suback(pid, 1))


async def _pub(broker, topic, payload=None):
    t, qos, pid, body = parse_publish(await broker.recv_packet())
    assert (t, qos) == (topic, 1), (t, qos)
    if payload is not None:
        assert body == payload, body
    return pid, body


async def _handshake(broker, first=True):
    pkt = await broker.recv_packet()
    # CONNECT: protocol MQTT 4, flags user+password+clean session, keepalive 10 s,
    # client id = username = the device id.
    assert pkt[0] == 0x10
    body = _body(pkt)
    assert body[:10] == H("00044d51545404c2000a"), body[:10]
    assert DEV.encode() in body and b"s3cret" in body
    broker.send(connack())
    await _sub(broker, "/a/d/%s/e/i" % DEV)
    await _sub(broker, "/a/d/%s/c/dw" % DEV)
    pid, _ = await _pub(broker, "/a/d/%s/c/up" % DEV, H("da00010700816b312e342e312d6173796e63"))
    broker.send(puback(pid))
    pid, _ = await _pub(broker, "/a/d/%s/c/up" % DEV, H("da000103008160"))
    broker.send(puback(pid))
    broker.send(publish("/a/d/%s/c/dw" % DEV, cbor.dumps(Tag(0x010400, [THING])), qos=0))
    await _sub(broker, "/a/t/%s/e/i" % THING)
    # Last values at every attach (a dashboard write made while offline arrives).
    pid, _ = await _pub(broker, "/a/d/%s/c/up" % DEV, H("da0001050080"))
    broker.send(puback(pid))
    if first:
        pack = senml.encode([{"n": "level", "v": 3}])
        broker.send(publish("/a/d/%s/c/dw" % DEV, cbor.dumps(Tag(0x010600, [pack])), qos=0))


def test_session_on_the_real_mqtt_client_byte_for_byte():
    broker = ScriptedBroker()
    client = _client(broker)
    writes = []
    client.register("sw1", value=True, on_write=lambda c, v: writes.append(v))
    client.register("level", value=None)

    async def body():
        task = asyncio.create_task(client.run())
        await _handshake(broker)
        pid, payload = await _pub(broker, "/a/t/%s/e/o" % THING, H("81a2006373773104f5"))
        broker.send(puback(pid))
        for _ in range(100):
            if client["level"] is not None and not client.records["sw1"].dirty:
                break
            await asyncio.sleep(0.01)
        assert client["level"] == 3
        assert not client.records["sw1"].dirty
        # A dashboard write, QoS 1: acknowledged, and on_write called.
        broker.send(publish("/a/t/%s/e/i" % THING, H("81a2006373773104f4"), qos=1, pid=77))
        assert await broker.recv_packet() == puback(77)
        assert writes == [False]
        # A change whose PUBACK never comes: the connection dies, the value is sent again.
        client["level"] = 4
        pid, payload = await _pub(broker, "/a/t/%s/e/o" % THING)
        assert senml.decode(payload) == [{"n": "level", "v": 4}]
        broker.send_eof()
        await _handshake(broker, first=False)
        pid, payload = await _pub(broker, "/a/t/%s/e/o" % THING)
        assert senml.decode(payload) == [{"n": "level", "v": 4}]
        broker.send(puback(pid))
        for _ in range(100):
            if not client.records["level"].dirty:
                break
            await asyncio.sleep(0.01)
        assert not client.records["level"].dirty
        client.stop()
        for _ in range(100):
            if task.done():
                break
            await asyncio.sleep(0.01)
        assert task.done()

    run(body(), 20)
    host, port, ssl, server_hostname = broker.opened[0]
    assert (host, port, server_hostname) == ("iot.arduino.cc", 8884, "iot.arduino.cc")
    assert ssl is not None
    assert client.counters["reconnects"] == 1 and client.counters["pushes"] == 2
