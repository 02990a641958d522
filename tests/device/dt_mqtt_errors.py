"""Failures from the broker side: refusals, malformed and oversize packets, bad callbacks."""

import asyncio

from harness import run
from scripted_broker import ScriptedBroker, connack, hexdump, puback, publish, pubrec
from scripted_broker import connected_client as connected
from tether.mqtt import MQTTClient, MQTTConnectError, MQTTError

H = bytes.fromhex


def test_connack_refusal_codes():
    reasons = {
        1: "unacceptable protocol version",
        2: "identifier rejected",
        3: "server unavailable",
        4: "bad user name or password",
        5: "not authorized",
    }

    async def go():
        for code in (1, 2, 3, 4, 5):
            b = ScriptedBroker()
            c = MQTTClient("c1", "h", open_connection=b.open_connection)
            task = asyncio.create_task(c.connect())
            await b.recv_packet()
            b.send(connack(code))
            try:
                await task
            except MQTTConnectError as exc:
                assert exc.code == code
                assert reasons[code] in str(exc), str(exc)
                assert isinstance(exc, MQTTError)
            else:
                raise AssertionError("code %d accepted" % code)
            assert not c.connected and b.closed

    run(go())


def expect_protocol_error(data, **kw):
    async def go():
        b = ScriptedBroker(**kw)
        c = await connected(b)
        b.send(data)
        await c.wait_closed()
        assert c.stats["protocol_errors"] == 1, (hexdump(data), c.stats)
        assert "protocol error" in c.close_reason, c.close_reason
        assert b.closed

    run(go())


def test_fifth_remaining_length_byte_is_a_protocol_error():
    expect_protocol_error(H("30ffffffff01"))


def test_unknown_packet_types_are_protocol_errors():
    expect_protocol_error(H("f000"))
    expect_protocol_error(H("0000"))
    expect_protocol_error(H("1000"))  # CONNECT never comes from a broker


def test_topic_length_beyond_the_packet_is_a_protocol_error():
    expect_protocol_error(H("3005000a616263"))


def test_invalid_utf8_topic_is_a_protocol_error():
    expect_protocol_error(H("30050002fffe78"))


def test_truncated_ack_is_a_protocol_error():
    expect_protocol_error(H("400100"))
    expect_protocol_error(H("90020001"))  # SUBACK without a return code


def test_publish_qos3_is_a_protocol_error():
    expect_protocol_error(H("3605000161" + "0001"))


def test_reserved_flags_are_a_protocol_error():
    expect_protocol_error(H("42020001"))  # PUBACK must have flags 0
    expect_protocol_error(H("60020001"))  # PUBREL must have flags 0010


def test_second_connack_is_a_protocol_error():
    expect_protocol_error(connack())


def test_oversize_packet_is_drained_and_the_next_delivered():
    async def go():
        b = ScriptedBroker()
        got = []
        c = await connected(b, max_packet=128, on_message=lambda *a: got.append(a))
        b.send(publish("big", b"x" * 1000))
        b.send(publish("small", b"ok"))
        for _ in range(100):
            if got:
                break
            await asyncio.sleep(0.01)
        assert got == [("small", b"ok", False, 0)], got
        assert c.stats["oversize_dropped"] == 1, c.stats
        assert c.stats["protocol_errors"] == 0
        assert c.connected
        c.close()

    run(go())


def test_oversize_packet_in_small_reads():
    async def go():
        b = ScriptedBroker(max_read=7)
        got = []
        c = await connected(b, max_packet=64, on_message=lambda *a: got.append(a))
        b.send(publish("big", b"y" * 500) + publish("s", b"1") + publish("big", b"z" * 70))
        b.send(publish("s", b"2"))
        for _ in range(200):
            if len(got) == 2:
                break
            await asyncio.sleep(0.01)
        assert got == [("s", b"1", False, 0), ("s", b"2", False, 0)], got
        assert c.stats["oversize_dropped"] == 2, c.stats
        assert c.connected
        c.close()

    run(go())


def test_oversize_qos1_publish_is_still_acknowledged():
    async def go():
        b = ScriptedBroker()
        c = await connected(b, max_packet=128)
        b.send(publish("big", b"x" * 300, qos=1, pid=42))
        await b.expect(puback(42))
        b.send(publish("big", b"x" * 300, qos=2, pid=43))
        await b.expect(pubrec(43))
        assert c.stats["oversize_dropped"] == 2 and c.stats["messages_in"] == 0
        c.close()

    run(go())


def test_maximum_remaining_length_is_parsed():
    async def go():
        b = ScriptedBroker()
        got = []
        c = await connected(b, max_packet=128, on_message=lambda *a: got.append(a))
        # 268,435,455 bytes announced (ff ff ff 7f); we send only the start of it.
        b.send(H("30ffffff7f" + "0001" + "61") + b"x" * 1000)
        await asyncio.sleep(0.05)
        assert c.stats["oversize_dropped"] == 1, c.stats
        assert c.connected and not got
        c.close()

    run(go())


def test_on_message_exception_is_counted_and_connection_kept():
    async def go():
        b = ScriptedBroker()
        got = []

        def on_message(topic, payload, retain, qos):
            if payload == b"bad":
                raise ValueError("boom")
            got.append(payload)

        c = await connected(b, on_message=on_message)
        b.send(publish("t", b"bad", qos=1, pid=1))
        await b.expect(puback(1))  # acknowledged anyway: it was delivered
        b.send(publish("t", b"good"))
        for _ in range(100):
            if got:
                break
            await asyncio.sleep(0.01)
        assert got == [b"good"]
        assert c.stats["callback_errors"] == 1
        assert c.connected
        c.close()

    run(go())


def test_puback_for_unknown_id_is_ignored():
    async def go():
        b = ScriptedBroker()
        c = await connected(b)
        b.send(puback(999))
        await asyncio.sleep(0.02)
        assert c.connected and c.stats["protocol_errors"] == 0
        c.close()

    run(go())


def test_publish_when_not_connected_raises():
    async def go():
        c = MQTTClient("c1", "h", open_connection=ScriptedBroker().open_connection)
        for qos in (0, 1):
            try:
                await c.publish("t", b"x", qos=qos)
            except MQTTError:
                pass
            else:
                raise AssertionError("no MQTTError")

    run(go())
