"""Persistent sessions (clean_session=False) against the scripted broker: the CONNACK's
session-present flag, QoS 2 left incomplete released on resuming, incoming QoS 2 ids kept.
The same against mosquitto: tests/test_mqtt_broker.py (test_session_*)."""

import asyncio

from harness import run
from scripted_broker import ScriptedBroker, connack, pubcomp, publish, pubrec, pubrel
from tether.mqtt import MQTTClient, MQTTError


def client(broker, clean_session=False, **kw):
    return MQTTClient(
        "c1",
        "broker.test",
        clean_session=clean_session,
        open_connection=broker.open_connection,
        keepalive=0,
        **kw,
    )


async def connect(c, b, present):
    task = asyncio.create_task(c.connect())
    await b.recv_packet()
    b.send(connack(0, present))
    await task


def test_session_present_flag_is_read_from_connack():
    async def go():
        b = ScriptedBroker()
        c = client(b)
        assert c.session_present is False
        await connect(c, b, True)
        assert c.session_present is True and c.connected
        c.close()
        await connect(c, b, False)
        assert c.session_present is False
        c.close()

    run(go())


def test_clean_session_never_reports_a_session():
    # [MQTT-3.2.2-1]: with CleanSession 1 the flag must be 0; a broker saying 1 is not
    # believed (nothing the client does may rest on it).
    async def go():
        b = ScriptedBroker()
        c = client(b, clean_session=True)
        await connect(c, b, True)
        assert c.session_present is False
        c.close()

    run(go())


def test_the_clean_flag_may_change_between_connects():
    async def go():
        b = ScriptedBroker()
        c = client(b, clean_session=True)
        task = asyncio.create_task(c.connect())
        pkt = await b.recv_packet()
        assert pkt[9] & 0x02  # connect flags: clean
        b.send(connack())
        await task
        c.close()
        c._clean = False  # what a profile does once its first (clean) sync is done
        task = asyncio.create_task(c.connect())
        pkt = await b.recv_packet()
        assert not pkt[9] & 0x02
        b.send(connack(0, True))
        await task
        assert c.session_present is True
        c.close()

    run(go())


def test_resumed_session_releases_incomplete_qos2_before_anything_new():
    async def go():
        b = ScriptedBroker()
        c = client(b)
        await connect(c, b, False)
        t1 = asyncio.create_task(c.publish("a", b"1", qos=2))  # pid 1: PUBREC, no PUBCOMP
        t2 = asyncio.create_task(c.publish("b", b"2", qos=2))  # pid 2: no PUBREC at all
        t3 = asyncio.create_task(c.publish("c", b"3", qos=1))  # QoS 1: nothing to release
        for _ in range(3):
            await b.recv_packet()
        b.send(pubrec(1))
        await b.expect(pubrel(1))
        b.send_eof()  # the connection dies
        for t in (t1, t2, t3):
            try:
                await t
                raise AssertionError("a publish survived the connection")
            except MQTTError:
                pass
        await connect(c, b, True)
        # Before connect() returned: PUBREL 1 and 2, then nothing else.
        await b.expect(pubrel(1) + pubrel(2))
        await b.expect_silence(50)
        b.send(pubcomp(1) + pubcomp(2))
        # A new publish does not reuse a released id before its PUBCOMP... and goes out.
        t = asyncio.create_task(c.publish("d", b"4", qos=1))
        pkt = await b.recv_packet()
        assert pkt[:1] == b"\x32" and pkt[5:7] not in (b"\x00\x01", b"\x00\x02")
        b.send(b"\x40\x02" + pkt[5:7])
        await t
        assert c.stats["protocol_errors"] == 0
        c.close()

    run(go())


def test_new_session_releases_nothing():
    async def go():
        b = ScriptedBroker()
        c = client(b)
        await connect(c, b, False)
        t = asyncio.create_task(c.publish("a", b"1", qos=2))
        await b.recv_packet()
        b.send_eof()
        try:
            await t
        except MQTTError:
            pass
        await connect(c, b, False)  # the broker lost the session: no stale ids to release
        await b.expect_silence(50)
        c.close()

    run(go())


def test_a_failed_attempt_keeps_what_to_release():
    async def go():
        b = ScriptedBroker()
        c = client(b)
        await connect(c, b, False)
        t = asyncio.create_task(c.publish("a", b"1", qos=2))
        await b.recv_packet()
        b.send_eof()
        try:
            await t
        except MQTTError:
            pass
        task = asyncio.create_task(c.connect())  # refused: nothing is forgotten by it
        await b.recv_packet()
        b.send(connack(3))
        try:
            await task
            raise AssertionError("connect did not fail")
        except MQTTError:
            pass
        await connect(c, b, True)
        await b.expect(pubrel(1))
        c.close()

    run(go())


def test_incoming_qos2_not_delivered_twice_across_a_resumed_session():
    async def go():
        b = ScriptedBroker()
        got = []
        c = client(b, on_message=lambda t, p, r, q: got.append(p))
        await connect(c, b, False)
        b.send(publish("x", b"once", qos=2, pid=9))
        await b.expect(pubrec(9))
        b.send_eof()  # our PUBREC may be lost: the broker resends the PUBLISH (DUP)
        await c.wait_closed()
        await connect(c, b, True)
        b.send(publish("x", b"once", qos=2, pid=9, dup=True))
        await b.expect(pubrec(9))
        b.send(pubrel(9))
        await b.expect(pubcomp(9))
        assert got == [b"once"], got
        # A new session forgets the ids: the same id is a new message then.
        c.close()
        await connect(c, b, False)
        b.send(publish("x", b"again", qos=2, pid=9))
        await b.expect(pubrec(9))
        assert got == [b"once", b"again"], got
        c.close()

    run(go())
