"""MQTT client against the scripted broker: CONNECT bytes, subscribe, publish, receive."""

import asyncio

from harness import run
from scripted_broker import (
    ScriptedBroker,
    connack,
    hexdump,
    puback,
    publish,
    suback,
    unsuback,
)
from tether.mqtt import MQTTClient, MQTTError

H = bytes.fromhex


def client(broker, **kw):
    kw.setdefault("open_connection", broker.open_connection)
    return MQTTClient(kw.pop("client_id", "c1"), "broker.test", **kw)


async def connected(broker, **kw):
    c = client(broker, **kw)
    task = asyncio.create_task(c.connect())
    await broker.recv_packet()
    broker.send(connack())
    await task
    return c


def test_connect_bytes_minimal():
    async def go():
        b = ScriptedBroker()
        c = client(b)
        task = asyncio.create_task(c.connect())
        # 10 len | 00 04 "MQTT" | level 4 | flags: clean | keepalive 60 | 00 02 "c1"
        await b.expect(H("100e00044d5154540402003c00026331"))
        b.send(connack())
        await task
        assert c.connected
        assert b.opened == [("broker.test", 1883, None, None)]
        c.close()

    run(go())


def test_connect_bytes_user_password_will():
    async def go():
        b = ScriptedBroker()
        c = client(
            b,
            user="u",
            password="pw",
            keepalive=10,
            will=("dev/st", b"off", 1, True),
        )
        task = asyncio.create_task(c.connect())
        # flags ee = user 80 | password 40 | will retain 20 | will qos 1 08 | will 04 | clean 02
        want = (
            "1022"
            "00044d515454"
            "04"
            "ee"
            "000a"
            "00026331"
            "0006" + "6465762f7374" + "0003" + "6f6666" + "000175" + "00027077"
        )
        await b.expect(H(want))
        b.send(connack())
        await task
        c.close()

    run(go())


def test_connect_bytes_user_without_password_not_clean():
    async def go():
        b = ScriptedBroker()
        c = client(b, user="u", clean_session=False, keepalive=0)
        task = asyncio.create_task(c.connect())
        await b.expect(H("101100044d515454048000000002633100017" + "5"))
        b.send(connack())
        await task
        c.close()

    run(go())


def test_connect_passes_ssl_context_and_server_hostname():
    async def go():
        b = ScriptedBroker()
        ctx = object()
        c = client(b, port=8883, ssl=ctx, server_hostname="iot.example")
        task = asyncio.create_task(c.connect())
        await b.recv_packet()
        b.send(connack())
        await task
        assert b.opened == [("broker.test", 8883, ctx, "iot.example")], b.opened
        c.close()

    run(go())


def test_subscribe_bytes_and_granted_qos():
    async def go():
        b = ScriptedBroker()
        c = await connected(b)
        task = asyncio.create_task(c.subscribe("a/b", qos=1))
        await b.expect(H("82080001" + "0003612f62" + "01"))
        b.send(suback(1, 1))
        assert await task == 1
        task = asyncio.create_task(c.unsubscribe("a/b"))
        await b.expect(H("a2070002" + "0003612f62"))
        b.send(unsuback(2))
        await task
        c.close()

    run(go())


def test_subscribe_refused_raises():
    async def go():
        b = ScriptedBroker()
        c = await connected(b)
        task = asyncio.create_task(c.subscribe("x", qos=0))
        await b.recv_packet()
        b.send(suback(1, 0x80))
        try:
            await task
        except MQTTError as exc:
            assert "refused" in str(exc)
        else:
            raise AssertionError("no MQTTError")
        assert c.connected
        c.close()

    run(go())


def test_suback_timeout_is_bounded():
    async def go():
        b = ScriptedBroker()
        c = await connected(b, ack_timeout_ms=300)
        try:
            await c.subscribe("x", timeout_ms=200)
        except MQTTError as exc:
            assert "SUBACK" in str(exc), exc
        else:
            raise AssertionError("no MQTTError")
        c.close()

    run(go())


def test_publish_qos0_bytes():
    async def go():
        b = ScriptedBroker()
        c = await connected(b)
        await c.publish("a/b", b"hi")
        await b.expect(H("3007" + "0003612f62" + "6869"))
        await c.publish("a/b", "hi", retain=True)
        await b.expect(H("3107" + "0003612f62" + "6869"))
        assert c.stats["messages_out"] == 2
        c.close()

    run(go())


def test_publish_qos1_waits_for_puback():
    async def go():
        b = ScriptedBroker()
        c = await connected(b)
        task = asyncio.create_task(c.publish("a/b", b"hi", qos=1))
        await b.expect(H("3209" + "0003612f62" + "0001" + "6869"))
        await asyncio.sleep(0.05)
        assert not task.done()
        b.send(puback(1))
        await task
        c.close()

    run(go())


def test_publish_large_payload_is_sent_whole():
    async def go():
        b = ScriptedBroker()
        c = await connected(b)
        payload = bytes(range(256)) * 4
        await c.publish("t", payload)
        # remaining length 2 + 1 + 1024 = 1027 -> 83 08
        await b.expect(H("308308" + "000174") + payload)
        c.close()

    run(go())


def test_receive_qos0_and_qos1_delivered_and_acked():
    async def go():
        b = ScriptedBroker()
        got = []
        c = await connected(b, on_message=lambda *a: got.append(a))
        b.send(publish("a/b", b"zero"))
        b.send(publish("c", b"one", qos=1, pid=0x1234, retain=True))
        await b.expect(puback(0x1234))
        assert got == [("a/b", b"zero", False, 0), ("c", b"one", True, 1)], got
        assert c.stats["messages_in"] == 2
        c.close()

    run(go())


def test_receive_with_one_byte_reads():
    async def go():
        b = ScriptedBroker(max_read=1)
        got = []
        c = await connected(b, on_message=lambda *a: got.append(a))
        b.send(publish("a", b"x" * 300))
        b.send(publish("b", b"y", qos=1, pid=5))
        await b.expect(puback(5))
        assert got == [("a", b"x" * 300, False, 0), ("b", b"y", False, 1)]
        c.close()

    run(go())


def test_topic_of_200_bytes_both_directions():
    async def go():
        b = ScriptedBroker()
        got = []
        c = await connected(b, on_message=lambda *a: got.append(a))
        topic = "t" * 200
        await c.publish(topic, b"p")
        # remaining length 2 + 200 + 1 = 203 -> cb 01
        await b.expect(H("30cb01" + "00c8") + topic.encode() + b"p")
        b.send(publish(topic, b"q"))
        await asyncio.sleep(0.02)
        assert got == [(topic, b"q", False, 0)]
        c.close()

    run(go())


def test_eof_closes_the_connection():
    async def go():
        b = ScriptedBroker()
        c = await connected(b)
        b.send_eof()
        await c.wait_closed()
        assert not c.connected
        assert "EOF" in c.close_reason, c.close_reason
        await b.expect_closed()
        try:
            await c.publish("x", b"y", qos=1)
        except MQTTError:
            pass
        else:
            raise AssertionError("publish after EOF did not raise")

    run(go())


def test_eof_fails_pending_publish():
    async def go():
        b = ScriptedBroker()
        c = await connected(b)
        task = asyncio.create_task(c.publish("a", b"1", qos=1))
        await b.recv_packet()
        b.send_eof()
        try:
            await task
        except MQTTError as exc:
            assert "connection lost" in str(exc), exc
        else:
            raise AssertionError("pending publish did not raise")

    run(go())


def test_disconnect_sends_disconnect_packet():
    async def go():
        b = ScriptedBroker()
        c = await connected(b)
        await c.disconnect()
        await b.expect(H("e000"))
        assert b.closed and not c.connected
        await c.wait_closed()

    run(go())


def test_hexdump_helper_formats_bytes():
    assert hexdump(b"\x01\xab") == "01 ab"


def test_broker_eof_after_disconnect_is_expected():
    async def go():
        b = ScriptedBroker()
        c = await connected(b)
        task = asyncio.create_task(c.disconnect())
        await b.expect(H("e000"))
        b.send_eof()
        await task
        assert c.close_reason == "disconnected by the application", c.close_reason

    run(go())


def test_scripted_broker_play_runs_a_whole_session():
    async def go():
        b = ScriptedBroker()
        got = []
        c = client(b, on_message=lambda *a: got.append(a))
        task = asyncio.create_task(c.connect())
        await b.play(
            [
                ("expect", H("100e00044d5154540402003c00026331")),
                ("send", connack()),
            ]
        )
        await task
        sub = asyncio.create_task(c.subscribe("t", qos=1))
        await b.play(
            [
                ("expect", H("820600010001" + "7401")),
                ("send", suback(1, 1)),
                ("send", publish("t", b"v", qos=1, pid=3)),
                ("expect", puback(3)),
                ("silence", 50),
                ("eof",),
                ("closed",),
            ]
        )
        assert await sub == 1
        assert got == [("t", b"v", False, 1)]
        await c.wait_closed()

    run(go())
