"""tether.sap.SAPIoTClient over the real tether.mqtt client and a scripted SAP gateway
(sap_broker.py): measures in both forms, acks (202, an error code, none), matching by
capability and sensor in order, commands and a malformed corpus, an outage, a full queue,
a refused client id, sync mode, and the store (measures that outlive a reboot)."""

import asyncio
import os

from harness import raises, run
from sap_broker import ALT, SapBroker, sap_client, started, stop, until
from tether.sap import MeasureRefused, MeasureUnconfirmed, SAPConnectError


def test_measures_in_both_forms_are_published_and_acked_202():
    broker = SapBroker()

    async def body():
        c, task = await started(broker)
        assert await c.send_measures("env", [[21.5, "C"], [22, "C"]], "s1") == 202
        code = await c.send_measures(
            "env", [{"temperature": 23.25}], sensor_alternate_id="s2", timestamp=1700000000000
        )
        assert code == 202
        m = c.queue_measures("env", ({"unit": "K"},), "s1")
        assert await c.wait_ack(m) == 202 and m.state == "acked" and m.latency_ms >= 0
        await stop(c, task, broker)
        return c

    c = run(body())
    assert broker.ids == [ALT]  # the client id is the device alternate id
    assert broker.subs == ["ack/" + ALT, "commands/" + ALT]
    assert [t for t, _ in broker.measures] == ["measures/" + ALT] * 3
    msgs = [m for _, m in broker.measures]
    assert msgs[0] == {
        "capabilityAlternateId": "env",
        "sensorAlternateId": "s1",
        "measures": [[21.5, "C"], [22, "C"]],
    }
    assert msgs[1] == {
        "capabilityAlternateId": "env",
        "sensorAlternateId": "s2",
        "measures": [{"temperature": 23.25}],
        "timestamp": 1700000000000,
    }
    assert msgs[2]["measures"] == [{"unit": "K"}]
    assert (c.counters["acked"], c.counters["measures_sent"], c.counters["refused"]) == (3, 3, 0)


def test_an_error_code_raises_with_the_code_and_is_counted():
    broker = SapBroker()
    broker.code = lambda body: 400 if body["measures"] == [["bad"]] else 202
    seen = []

    async def body():
        c, task = await started(broker, on_ack=lambda client, m: seen.append(m.code))
        exc = None
        try:
            await c.send_measures("env", [["bad"]], "s1")
        except MeasureRefused as e:
            exc = e
        assert exc is not None and exc.code == 400 and exc.message == "refused by the test"
        assert "400" in str(exc) and "env/s1" in str(exc)
        assert await c.send_measures("env", [["good"]], "s1") == 202  # the next one is fine
        await stop(c, task, broker)
        return c

    c = run(body())
    assert c.counters["refused"] == 1 and c.counters["acked"] == 1
    assert seen == [400, 202]


def test_a_missing_ack_is_unconfirmed_after_the_timeout_never_dropped():
    broker = SapBroker()
    broker.code = lambda body: None if body["measures"] == [[1]] else 202

    async def body():
        c, task = await started(broker, ack_timeout_ms=300)
        m = c.queue_measures("env", [[1]], "s1")
        exc = None
        try:
            await c.wait_ack(m)
        except MeasureUnconfirmed as e:
            exc = e
        assert exc is not None and exc.reason == "no ack within 300 ms" and exc.code is None
        assert m.state == "unconfirmed"
        assert await c.send_measures("env", [[2]], "s1") == 202  # not confused with [1]'s
        await stop(c, task, broker)
        return c

    c = run(body())
    assert c.counters["unconfirmed"] == 1 and c.counters["acked"] == 1
    assert c.counters["orphan_acks"] == 0


def test_acks_are_matched_by_capability_and_sensor_in_order():
    broker = SapBroker()
    broker.hold = True

    async def body():
        c, task = await started(broker)
        a1 = c.queue_measures("a", [[1]], "s1")
        b1 = c.queue_measures("b", [[2]], "s1")
        a2 = c.queue_measures("a", [[3]], "s2")
        a1bis = c.queue_measures("a", [[4]], "s1")
        assert await until(lambda: len(broker.held) == 4, 2000)
        ack = broker.held
        # Out of order across pairs; the two (a, s1) acks go to a1 then a1bis.
        for i, code in ((2, 202), (1, 409), (0, 202), (3, 500)):
            ack[i]["code"] = code
            broker.ack(ack[i])
        assert await until(lambda: a1bis.done, 2000)
        await stop(c, task, broker)
        return a1, b1, a2, a1bis

    a1, b1, a2, a1bis = run(body())
    assert (a1.state, a1.code) == ("acked", 202)
    assert (b1.state, b1.code) == ("refused", 409)
    assert (a2.state, a2.code) == ("acked", 202)
    assert (a1bis.state, a1bis.code) == ("refused", 500)


def test_commands_reach_the_handler_and_a_malformed_corpus_is_counted():
    broker = SapBroker()
    got = []

    async def async_handler(client, cap, sensor, cmd):
        await asyncio.sleep(0)
        got.append(("async", cap, sensor, cmd))

    async def body():
        c, task = await started(
            broker, on_command=lambda cl, cap, sensor, cmd: got.append((cap, sensor, cmd))
        )
        broker.command({"capabilityAlternateId": "sw", "sensorAlternateId": "s1",
                        "command": {"LED": True, "Speed": 50.0}})  # fmt: skip
        assert await until(lambda: got, 2000)
        corpus = [b"", b"{", b"null", b"[1]", b'"x"', b"\xff\xfe", b"{" * 200,
                  b'{"capabilityAlternateId": 1, "sensorAlternateId": "s", "command": {}}',
                  b'{"capabilityAlternateId": "a", "sensorAlternateId": "s", "command": 3}',
                  b'{"sensorAlternateId": "s", "command": {}}']  # fmt: skip
        acks = [b"", b"{}", b'{"code": 202}', b'{"capabilityAlternateId": "a", '
                b'"sensorAlternateId": "s", "code": "x"}', b"[202]", b'{"capabilityAlternateId":'
                b' "a", "sensorAlternateId": "s", "code": false}']  # fmt: skip
        for p in corpus:
            broker.command(p)
        for p in acks:
            broker.ack(p)
        broker.ack({"capabilityAlternateId": "a", "sensorAlternateId": "s", "code": 202})
        c.on_command = async_handler  # handlers are attributes too
        broker.command({"capabilityAlternateId": "sw", "sensorAlternateId": "s1",
                        "command": {"LED": False}})  # fmt: skip
        assert await until(lambda: len(got) == 2, 2000), c.stats()
        bad = c.counters["bad_messages"]
        up = c.connected
        await stop(c, task, broker)
        return c, bad, up, len(corpus) + len(acks)

    c, bad, up, n = run(body())
    assert got == [("sw", "s1", {"LED": True, "Speed": 50.0}),
                   ("async", "sw", "s1", {"LED": False})]  # fmt: skip
    assert up and c.counters["reconnects"] == 0 and bad == n, c.stats()
    assert c.counters["commands"] == 2 and c.counters["orphan_acks"] == 1


def test_a_failing_handler_is_counted_and_the_next_command_arrives():
    broker = SapBroker()
    got = []

    def handler(client, cap, sensor, cmd):
        if cmd.get("boom"):
            raise RuntimeError("handler bug")
        got.append(cmd)

    async def body():
        c, task = await started(broker, on_command=handler)
        cmd = {"capabilityAlternateId": "sw", "sensorAlternateId": "s1"}
        cmd["command"] = {"boom": True}
        broker.command(cmd)
        cmd = dict(cmd, command={"LED": True})
        broker.command(cmd)
        assert await until(lambda: got, 2000)
        await stop(c, task, broker)
        return c

    c = run(body())
    assert got == [{"LED": True}] and c.counters["callback_errors"] == 1


def test_measures_made_during_an_outage_are_delivered_and_acked_after_it():
    broker = SapBroker()

    async def body():
        c, task = await started(broker)
        assert await c.send_measures("env", [[0]], "s1") == 202
        broker.b.send_eof()  # the gateway goes away
        assert await until(lambda: not c.connected, 2000)
        pending = [c.queue_measures("env", [[i]], "s1") for i in (1, 2, 3)]
        assert [m.state for m in pending] == ["queued"] * 3
        codes = []
        for m in pending:  # (no await in a comprehension on MicroPython)
            codes.append(await c.wait_ack(m))
        await stop(c, task, broker)
        return c, codes

    c, codes = run(body())
    assert codes == [202, 202, 202]
    assert [m["measures"] for _, m in broker.measures] == [[[0]], [[1]], [[2]], [[3]]]
    assert c.counters["reconnects"] == 1 and broker.ids == [ALT, ALT]
    assert broker.subs == ["ack/" + ALT, "commands/" + ALT] * 2


def test_a_connection_lost_before_the_ack_ends_its_measure_unconfirmed():
    broker = SapBroker()
    broker.code = lambda body: None

    async def body():
        c, task = await started(broker, ack_timeout_ms=60000)
        m = c.queue_measures("env", [[1]], "s1")
        assert await until(lambda: m.state == "sent" and broker.measures, 2000)
        broker.b.send_eof()
        exc = None
        try:
            await c.wait_ack(m)
        except MeasureUnconfirmed as e:
            exc = e
        await stop(c, task, broker)
        return exc

    exc = run(body())
    assert exc is not None and "connection ended before its ack" in exc.reason


def test_a_full_queue_drops_the_oldest_with_a_reason():
    broker = SapBroker()
    c = sap_client(broker, max_queued=2)  # never started: everything stays queued
    ms = [c.queue_measures("env", [[i]], "s1") for i in range(3)]
    assert [m.state for m in ms] == ["dropped", "queued", "queued"]
    exc = raises(MeasureUnconfirmed, ms[0].result)
    assert "queue full" in exc.reason
    assert c.counters["dropped"] == 1
    raises(ValueError, c.queue_measures, "env", [], "s1")
    raises(ValueError, c.queue_measures, "env", [[1]], None)
    raises(ValueError, c.queue_measures, "env", [5], "s1")
    raises(ValueError, c.queue_measures, "env", [[float("nan")]], "s1")


def test_a_wrong_client_id_is_refused_with_a_clear_error():
    broker = SapBroker()
    broker.refuse = 2

    async def body():
        c = sap_client(broker)
        task = asyncio.create_task(c.run())
        exc = None
        try:
            await c.wait_connected(3000)
        except SAPConnectError as e:
            exc = e
        await stop(c, task, broker)
        return exc

    exc = run(body())
    assert exc is not None and exc.code == 2 and exc.permanent
    assert "identifier rejected" in str(exc) and "alternate id" in str(exc)


def test_sync_mode_returns_the_ack_code():
    broker = SapBroker()
    c = sap_client(broker, sync_mode=True)
    c.start(3000)
    try:
        assert c.connected
        assert c.send_measures("env", [[1]], "s1") == 202
        broker.code = lambda body: 403
        e = raises(MeasureRefused, c.send_measures, "env", [[2]], "s1")
        assert e.code == 403
        c.update()
    finally:
        broker.stop()  # first: stop() turns the loop once more, the cancel lands
        c.stop()
    assert c.counters["acked"] == 1 and c.counters["refused"] == 1


def _store_dir():
    d = "/tmp/tether-dt-sap-" + "".join("%02x" % b for b in os.urandom(6))
    os.mkdir(d)
    return d


def test_with_a_store_measures_outlive_a_reboot_and_their_acks_are_counted():
    from tether.store import Store

    d = _store_dir()
    first = sap_client(SapBroker(), store=Store(d))
    first.begin()  # what run() does first; this boot never connects
    for i in range(3):
        assert first.queue_measures("env", [[i]], "s1").state == "queued"
    broker = SapBroker()

    async def body():
        c, task = await started(broker, store=Store(d))
        assert await until(lambda: c.counters["acked"] == 3, 2000)
        m = c.queue_measures("env", [[9]], "s1")
        assert await c.wait_ack(m) == 202
        await stop(c, task, broker)
        return c

    c = run(body())
    assert [m["measures"] for _, m in broker.measures] == [[[0]], [[1]], [[2]], [[9]]]
    assert c.counters["acked"] == 4 and c.counters["orphan_acks"] == 0
    assert Store(d).depth == 0  # all delivered and acknowledged on flash
