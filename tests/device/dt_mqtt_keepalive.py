"""Keepalive: PINGREQ timing, dead-connection detection, EOF, bounded connect."""

import asyncio

from harness import run
from scripted_broker import ScriptedBroker, connack, pingresp, publish
from scripted_broker import connected_client as connected
from tether.compat import ticks_diff, ticks_ms
from tether.mqtt import MQTTClient, MQTTError

PINGREQ = b"\xc0\x00"


def test_pingreq_after_half_keepalive_of_idle():
    async def go():
        b = ScriptedBroker()
        c = await connected(b, keepalive=1)
        t0 = ticks_ms()
        await b.expect(PINGREQ, timeout_ms=1500)
        first = ticks_diff(ticks_ms(), t0)
        assert 450 <= first <= 1200, first
        b.send(pingresp())
        await b.expect(PINGREQ, timeout_ms=1500)
        second = ticks_diff(ticks_ms(), t0) - first
        assert 450 <= second <= 1200, second
        b.send(pingresp())
        await asyncio.sleep(0.05)
        assert c.stats["pings"] == 2 and c.stats["pongs"] == 2, c.stats
        c.close()

    run(go())


def test_answered_pings_keep_the_connection_alive():
    async def go():
        b = ScriptedBroker()
        c = await connected(b, keepalive=1)
        t0 = ticks_ms()
        while ticks_diff(ticks_ms(), t0) < 2500:
            await b.expect(PINGREQ, timeout_ms=1500)
            b.send(pingresp())
        assert c.connected
        c.close()

    run(go())


def test_no_ping_while_publishing_and_receiving():
    async def go():
        b = ScriptedBroker()
        c = await connected(b, keepalive=1)
        t0 = ticks_ms()
        while ticks_diff(ticks_ms(), t0) < 1600:
            await c.publish("t", b"x")
            b.send(publish("r", b"y"))
            await asyncio.sleep(0.1)
        assert PINGREQ not in bytes(b.written), b.written
        assert c.stats["pings"] == 0 and c.connected
        c.close()

    run(go())


def test_publishing_to_a_silent_broker_still_pings():
    # Only QoS 0 going out and nothing coming back: a PINGREQ every keepalive/2 at most,
    # and its PINGRESP is what keeps the connection alive.
    async def go():
        b = ScriptedBroker()
        c = await connected(b, keepalive=1)
        t0 = ticks_ms()
        while ticks_diff(ticks_ms(), t0) < 2200:
            await c.publish("t", b"x")
            if PINGREQ in bytes(b.written):
                b.written = bytearray(bytes(b.written).replace(PINGREQ, b""))
                b.send(pingresp())
            await asyncio.sleep(0.1)
        assert c.connected, c.close_reason
        assert 2 <= c.stats["pings"] <= 5, c.stats
        c.close()

    run(go())


def test_silence_for_one_and_a_half_keepalive_is_a_dead_connection():
    async def go():
        b = ScriptedBroker()
        c = await connected(b, keepalive=1)
        t0 = ticks_ms()
        pending = asyncio.create_task(c.publish("t", b"x", qos=1))
        await c.wait_closed()
        dead_after = ticks_diff(ticks_ms(), t0)
        assert 1450 <= dead_after <= 2600, dead_after
        assert "keepalive" in c.close_reason, c.close_reason
        assert not c.connected
        await b.expect_closed()
        try:
            await pending
        except MQTTError:
            pass
        else:
            raise AssertionError("pending publish did not fail")

    run(go())


def test_any_packet_counts_as_life():
    async def go():
        b = ScriptedBroker()
        c = await connected(b, keepalive=1)
        t0 = ticks_ms()
        while ticks_diff(ticks_ms(), t0) < 2000:
            b.send(publish("r", b"y"))  # never answers PINGREQ, but keeps talking
            await asyncio.sleep(0.2)
        assert c.connected, c.close_reason
        c.close()

    run(go())


def test_eof_during_connect_raises():
    async def go():
        b = ScriptedBroker()
        c = MQTTClient("c1", "h", open_connection=b.open_connection)
        task = asyncio.create_task(c.connect())
        await b.recv_packet()
        b.send_eof()
        try:
            await task
        except MQTTError as exc:
            assert "CONNACK" in str(exc), exc
        else:
            raise AssertionError("connect did not fail")
        assert "EOF" in c.close_reason

    run(go())


def test_connack_timeout_is_bounded():
    async def go():
        b = ScriptedBroker()
        c = MQTTClient("c1", "h", open_connection=b.open_connection, connect_timeout_ms=300)
        t0 = ticks_ms()
        try:
            await c.connect()
        except MQTTError as exc:
            assert "CONNACK" in str(exc), exc
        else:
            raise AssertionError("connect did not time out")
        assert ticks_diff(ticks_ms(), t0) < 1500
        assert b.closed

    run(go())


def test_tcp_connect_timeout_is_an_oserror():
    async def hang(host, port, **kw):
        await asyncio.sleep(10)

    async def go():
        c = MQTTClient("c1", "h", open_connection=hang, connect_timeout_ms=200)
        try:
            await c.connect()
        except OSError as exc:
            assert exc.errno == 110, exc
        else:
            raise AssertionError("no OSError")

    run(go())


def test_connection_refused_oserror_propagates():
    async def go():
        b = ScriptedBroker()
        b.refuse = OSError(111, "refused")
        c = MQTTClient("c1", "h", open_connection=b.open_connection)
        try:
            await c.connect()
        except OSError as exc:
            assert exc.errno == 111
        else:
            raise AssertionError("no OSError")
        assert not c.connected

    run(go())


def test_reconnect_on_the_same_client():
    async def go():
        b = ScriptedBroker()
        c = await connected(b)
        b.send_eof()
        await c.wait_closed()
        task = asyncio.create_task(c.connect())
        await b.recv_packet()
        b.send(connack())
        await task
        assert c.connected and c.stats["connects"] == 2
        task = asyncio.create_task(c.publish("t", b"", qos=1))
        pkt = await b.recv_packet()
        assert pkt[0] == 0x32, pkt
        c.close()
        try:
            await task
        except MQTTError:
            pass

    run(go())


def test_write_error_closes_the_connection():
    async def go():
        b = ScriptedBroker()
        c = await connected(b)
        waiting = asyncio.create_task(c.subscribe("t"))
        await b.recv_packet()
        b.fail_writes = OSError(104, "reset")
        try:
            await c.publish("t", b"x", qos=1)
        except MQTTError as exc:
            assert "write failed" in str(exc), exc
        else:
            raise AssertionError("publish did not fail")
        await c.wait_closed()
        assert "write failed" in c.close_reason and b.closed
        try:
            await waiting
        except MQTTError:
            pass
        else:
            raise AssertionError("pending subscribe did not fail")

    run(go())


def test_connect_into_a_black_hole_ends_at_the_keepalive_not_the_connect_deadline():
    # A peer that takes the TCP connection and swallows everything (over TLS the CONNECT
    # write carries the handshake and never completes): the ticker declares the connection
    # dead after 1.5 x keepalive and connect() raises then, not after connect_timeout_ms.
    from scripted_broker import ScriptedBroker
    from tether.compat import ticks_diff, ticks_ms
    from tether.mqtt import MQTTClient
    from tether.mqtt_packet import MQTTError

    broker = ScriptedBroker()
    broker.stalled = True  # the client's drain() never returns
    c = MQTTClient(
        "c1", "broker.test", keepalive=1, connect_timeout_ms=10000,
        open_connection=broker.open_connection,
    )  # fmt: skip

    async def body():
        t0 = ticks_ms()
        try:
            await c.connect()
            raise AssertionError("connected to a black hole")
        except MQTTError as exc:
            return ticks_diff(ticks_ms(), t0), str(exc)

    took, why = run(body(), 8)
    assert took < 4000, took
    assert "keepalive" in why, why
    assert not c.connected
