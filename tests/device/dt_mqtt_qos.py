"""QoS 1/2 flows both ways, exactly-once delivery, DUP retransmission, in-flight window."""

import asyncio

from harness import run
from scripted_broker import (
    ScriptedBroker,
    puback,
    pubcomp,
    publish,
    pubrec,
    pubrel,
)
from scripted_broker import connected_client as connected
from tether.mqtt import MQTTError

H = bytes.fromhex


async def fails(task, words):
    try:
        await task
    except MQTTError as exc:
        assert words in str(exc), exc
        return
    raise AssertionError("no MQTTError")


def test_publish_qos2_full_handshake():
    async def go():
        b = ScriptedBroker()
        c = await connected(b)
        task = asyncio.create_task(c.publish("a/b", b"hi", qos=2))
        await b.expect(H("3409" + "0003612f62" + "0001" + "6869"))
        b.send(pubrec(1))
        await b.expect(H("62020001"))  # PUBREL carries flags 0010
        await asyncio.sleep(0.03)
        assert not task.done()
        b.send(pubcomp(1))
        await task
        assert c.stats["retransmits"] == 0
        c.close()

    run(go())


def test_packet_ids_increase_per_publish():
    async def go():
        b = ScriptedBroker()
        c = await connected(b)
        for pid in (1, 2, 3):
            task = asyncio.create_task(c.publish("t", b"", qos=1))
            await b.expect(H("3205000174") + bytes([0, pid]))
            b.send(puback(pid))
            await task
        c.close()

    run(go())


def test_receive_qos2_delivered_exactly_once():
    async def go():
        b = ScriptedBroker()
        got = []
        c = await connected(b, on_message=lambda *a: got.append(a))
        b.send(publish("q", b"1", qos=2, pid=9))
        await b.expect(pubrec(9))
        # The broker did not see our PUBREC and sends the message again with DUP.
        b.send(publish("q", b"1", qos=2, pid=9, dup=True))
        await b.expect(pubrec(9))
        b.send(pubrel(9))
        await b.expect(pubcomp(9))
        assert got == [("q", b"1", False, 2)], got
        assert c.stats["duplicates_dropped"] == 1
        # After PUBREL the id is free again: a new message with it is delivered.
        b.send(publish("q", b"2", qos=2, pid=9))
        await b.expect(pubrec(9))
        assert got[-1] == ("q", b"2", False, 2), got
        c.close()

    run(go())


def test_pubrel_for_unknown_id_is_completed():
    async def go():
        b = ScriptedBroker()
        c = await connected(b)
        b.send(pubrel(77))
        await b.expect(pubcomp(77))
        assert c.connected
        c.close()

    run(go())


def test_qos1_publish_retransmitted_with_dup():
    async def go():
        b = ScriptedBroker()
        c = await connected(b, retry_ms=200)
        task = asyncio.create_task(c.publish("a", b"x", qos=1))
        await b.expect(H("3206000161000178"))
        await b.expect(H("3a06000161000178"), timeout_ms=1500)  # same packet, DUP set
        b.send(puback(1))
        await task
        assert c.stats["retransmits"] == 1, c.stats
        await b.expect_silence(400)
        c.close()

    run(go())


def test_qos2_publish_and_pubrel_retransmitted():
    async def go():
        b = ScriptedBroker()
        c = await connected(b, retry_ms=200)
        task = asyncio.create_task(c.publish("a", b"x", qos=2))
        await b.expect(H("3406000161000178"))
        await b.expect(H("3c06000161000178"), timeout_ms=1500)
        b.send(pubrec(1))
        await b.expect(H("62020001"))
        await b.expect(H("62020001"), timeout_ms=1500)  # PUBREL again, no PUBCOMP yet
        b.send(pubcomp(1))
        await task
        assert c.stats["retransmits"] == 2, c.stats
        c.close()

    run(go())


def test_inflight_window_blocks_until_an_ack():
    async def go():
        b = ScriptedBroker()
        c = await connected(b, max_inflight=2)
        tasks = [asyncio.create_task(c.publish("t", bytes([i]), qos=1)) for i in range(3)]
        p1 = await b.recv_packet()
        p2 = await b.recv_packet()
        assert p1[-3:] == H("000100") and p2[-3:] == H("000201"), (p1, p2)
        await b.expect_silence(150)  # the third waits for a slot
        b.send(puback(1))
        p3 = await b.recv_packet()
        assert p3[-1] == 2
        b.send(puback(2) + puback(p3[-3] * 256 + p3[-2]))
        for t in tasks:
            await t
        c.close()

    run(go())


def test_window_wait_is_bounded_by_the_publish_timeout():
    async def go():
        b = ScriptedBroker()
        c = await connected(b, max_inflight=1)
        first = asyncio.create_task(c.publish("t", b"1", qos=1))
        await b.recv_packet()
        await fails(asyncio.create_task(c.publish("t", b"2", qos=1, timeout_ms=200)), "slot")
        b.send(puback(1))
        await first
        c.close()

    run(go())


def test_ack_wait_is_bounded_and_frees_the_slot():
    async def go():
        b = ScriptedBroker()
        c = await connected(b, max_inflight=1)
        await fails(asyncio.create_task(c.publish("t", b"1", qos=1, timeout_ms=200)), "PUBACK")
        await b.recv_packet()
        # The slot is free again: the next publish goes out at once.
        task = asyncio.create_task(c.publish("t", b"2", qos=1))
        p = await b.recv_packet()
        b.send(puback(p[-3] * 256 + p[-2]))
        await task
        assert c.connected
        c.close()

    run(go())


def test_connection_death_fails_every_waiting_publish():
    async def go():
        b = ScriptedBroker()
        c = await connected(b, max_inflight=1)
        a = asyncio.create_task(c.publish("t", b"1", qos=2))
        await b.recv_packet()
        w = asyncio.create_task(c.publish("t", b"2", qos=1))  # waits for the window
        await asyncio.sleep(0.02)
        b.send_eof()
        await fails(a, "connection lost")
        await fails(w, "connection lost")

    run(go())


def test_no_retransmission_before_the_first_send():
    async def go():
        b = ScriptedBroker()
        c = await connected(b, retry_ms=100)
        b.stalled = True  # the writer is stuck in drain()
        first = asyncio.create_task(c.publish("a", b"0"))
        await asyncio.sleep(0.01)
        second = asyncio.create_task(c.publish("a", b"1", qos=1))
        await asyncio.sleep(0.4)  # several retry periods while waiting for the writer
        b.stalled = False
        await first
        await b.expect(H("3004000161" + "30"))
        await b.expect(H("3206000161000131"))
        b.send(puback(1))
        await second
        assert c.stats["retransmits"] == 0, c.stats
        assert not b.written, b.written
        c.close()

    run(go())


def test_a_stuck_writer_blocks_other_packets_until_it_drains():
    async def go():
        b = ScriptedBroker()
        c = await connected(b)
        b.stalled = True
        first = asyncio.create_task(c.publish("a", b"0"))
        await asyncio.sleep(0.01)
        second = asyncio.create_task(c.publish("a", b"1"))
        await asyncio.sleep(0.05)
        assert not first.done() and not second.done()
        assert bytes(b.written) == H("3004000161" + "30"), b.written  # only the first
        b.stalled = False
        await first
        await second
        await b.expect(H("3004000161" + "30" + "3004000161" + "31"))
        c.close()

    run(go())
