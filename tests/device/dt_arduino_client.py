"""ArduinoCloudClient against the in-process fake cloud (fake_mqtt), on both interpreters."""

import asyncio

from fake_mqtt import FakeCloud, until
from harness import run
from tether import cbor, log, senml
from tether.arduino import (
    ArduinoCloudClient,
    Color,
    ColoredLight,
    DimmedLight,
    Location,
    Schedule,
    Task,
    Television,
)
from tether.arduino.records import unix_time
from tether.compat import ticks_diff, ticks_ms

DEV = "3a1c5e1e-7d1b-4c2e-9f00-7e57e7e57001"
THING = "5f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
THING2 = "0a0b0c0d-1111-4222-8333-444455556666"


class Sink:
    def __init__(self):
        self.text = ""

    def write(self, s):
        self.text += s


def fast(client):
    # Millisecond timings so retries and reconnects happen within a test.
    client.DISCOVERY_FIRST_MS = 40
    client.DISCOVERY_MAX_MS = 80
    client.LAST_VALUES_MS = 100
    client.session.backoff_min_ms = 10
    client.session.backoff_max_ms = 40
    return client


def make(cloud, **kw):
    client = ArduinoCloudClient(device_id=DEV, username=DEV, password="s3cret", **kw)
    client.mqtt_factory = cloud.factory
    return fast(client)


async def start(client):
    task = asyncio.create_task(client.run())
    ok = await until(lambda: client.connected, 3000)
    assert ok, client.stats()
    return task


async def stop(client, task):
    client.stop()
    await until(lambda: task.done(), 2000)
    assert task.done()


def hexs(b):
    return "".join("%02x" % x for x in b)


# -- discovery ---------------------------------------------------------------------------------


def test_legacy_discovery_and_get_last_values():
    pack = [{"n": "sw1", "vb": True}, {"n": "k", "v": 9}]
    cloud = FakeCloud(THING, command=False, last_values=pack)
    client = make(cloud)
    client.register("sw1", value=None)
    client.register("k", value=5)  # the device's own value: last values leave it alone

    async def body():
        task = await start(client)
        assert client.thing_id == THING
        await until(lambda: client["sw1"] is not None)
        assert client["sw1"] is True
        await stop(client, task)

    run(body())
    assert hexs(cloud.sent("/c/up")[0]) == "da00010700816b312e342e312d6173796e63"
    assert hexs(cloud.sent("/c/up")[1]) == "da000103008160"
    assert hexs(cloud.sent("/shadow/o")[0]) == "81a20063723a6d036d6765744c61737456616c756573"
    assert cloud.sent("/c/up")[2:] == []  # no LastValuesBegin in the legacy flow
    assert client["k"] == 5
    assert client.counters["last_values"] == 1


def test_command_discovery_and_last_values_update_initialise_only_unset_values():
    pack = [{"n": "a", "v": 1}, {"n": "b", "v": 2}, {"n": "tz_offset", "v": 7200}]
    cloud = FakeCloud(THING, legacy=False, last_values=pack)
    client = make(cloud)
    client.register("a", value=None)
    client.register("b", value=10)

    async def body():
        task = await start(client)
        await until(lambda: client["a"] is not None)
        await until(lambda: cloud.pushed_values().get("b") == 10)
        await stop(client, task)

    run(body())
    assert client["a"] == 1 and client["b"] == 10  # b kept the device's own value
    assert client["tz_offset"] == 7200
    assert hexs(cloud.sent("/c/up")[2]) == "da0001050080"
    assert cloud.sent("/shadow/o") == []
    assert cloud.pushed_values() == {"b": 10}  # a came from the cloud: not sent back


def test_timezone_down_sets_offset_and_until():
    cloud = FakeCloud(THING)
    client = make(cloud)

    async def body():
        task = await start(client)
        cloud.conn.inject(cloud.dev("c/dw"), bytes.fromhex("da0001090082190e101a6553f100"))
        await until(lambda: client["tz_offset"] is not None)
        await stop(client, task)

    run(body())
    assert client["tz_offset"] == 3600 and client["tz_dst_until"] == 1700000000


def test_thing_detach_then_attach_to_a_new_thing():
    cloud = FakeCloud(THING)
    seen = []
    client = make(cloud)
    client.register("sw", value=False, on_write=lambda c, v: seen.append(v))

    async def body():
        task = await start(client)
        begins = len(cloud.sent("/c/up"))
        cloud.thing_id = None  # the cloud has no thing for the device for now
        cloud.send_command(0x011000, [THING])
        await until(lambda: client.thing_id is None)
        assert "/a/t/%s/e/i" % THING in cloud.unsubscribed
        assert not client.connected
        await until(lambda: len(cloud.sent("/c/up")) > begins)  # ThingBegin again
        cloud.thing_id = THING2
        cloud.send_command(0x010400, [THING2])
        await until(lambda: client.thing_id == THING2)
        assert client.connected
        assert not cloud.write([{"n": "sw", "vb": True}], THING)  # old topic: unsubscribed
        cloud.write([{"n": "sw", "vb": True}], THING2)
        await until(lambda: seen)
        await stop(client, task)

    run(body())
    assert seen == [True]


def test_thing_update_with_another_id_moves_to_that_thing():
    cloud = FakeCloud(THING)
    client = make(cloud)

    async def body():
        task = await start(client)
        cloud.thing_id = THING2
        cloud.send_command(0x010400, [THING2])
        await until(lambda: client.thing_id == THING2)
        await stop(client, task)

    run(body())
    assert "/a/t/%s/e/i" % THING in cloud.unsubscribed


def test_not_linked_is_logged_and_waited_out():
    cloud = FakeCloud("")
    client = make(cloud)
    sink = Sink()

    async def body():
        log.basicConfig(stream=sink)
        try:
            task = asyncio.create_task(client.run())
            await until(lambda: client.counters["not_linked"] >= 2)
            assert not client.connected
            cloud.thing_id = THING
            cloud.send_command(0x010400, [THING])
            assert await until(lambda: client.connected)
            await stop(client, task)
        finally:
            log.basicConfig()

    run(body())
    assert "not linked to a thing" in sink.text
    assert client.thing_id == THING


def test_no_discovery_answer_drops_the_connection_after_bounded_retries():
    cloud = FakeCloud(THING, legacy=False, command=False)
    client = make(cloud)
    client.DISCOVERY_RETRIES = 3

    async def body():
        task = asyncio.create_task(client.run())
        await until(lambda: cloud.connects >= 2)
        cloud.command = True  # the cloud comes back
        assert await until(lambda: client.connected)
        await stop(client, task)

    run(body())
    assert client.counters["discovery_retries"] >= 2
    assert client.counters["reconnects"] >= 1


def test_refused_connections_are_retried_with_backoff():
    cloud = FakeCloud(THING)
    cloud.refuse_connects = 3
    client = make(cloud)

    async def body():
        task = await start(client)
        await stop(client, task)

    run(body())
    assert cloud.connects == 4
    assert client.session.failures >= 3


# -- writes and pushes ---------------------------------------------------------------------------


def test_write_reaches_on_write_as_it_arrives():
    cloud = FakeCloud(THING)
    client = make(cloud)
    got = []
    client.register("sw1", value=False, on_write=lambda c, v: got.append((v, ticks_ms())))

    async def body():
        task = await start(client)
        t0 = ticks_ms()
        cloud.write([{"n": "sw1", "vb": True}])
        await until(lambda: got, 1000, 1)
        await stop(client, task)
        return t0

    t0 = run(body())
    assert got and got[0][0] is True
    # Event-driven: far below the original client's 1 s polling, even on a loaded machine.
    assert ticks_diff(got[0][1], t0) < 250, ticks_diff(got[0][1], t0)
    assert client.counters["writes"] == 1


def test_write_scalars_of_every_type():
    cloud = FakeCloud(THING)
    client = make(cloud)
    got = {}

    def keep(name):
        return lambda c, v: got.__setitem__(name, v)

    client.register("b", value=False, on_write=keep("b"))
    client.register("i", value=1, on_write=keep("i"))
    client.register("f", value=0.5, on_write=keep("f"))
    client.register("s", value="", on_write=keep("s"))

    async def body():
        task = await start(client)
        cloud.write(
            [
                {"n": "b", "vb": True},
                {"n": "i", "v": -42},
                {"n": "f", "v": 3},  # an int for a float variable: the cloud's quirk
                {"n": "s", "vs": "hello"},
            ]
        )
        await until(lambda: len(got) == 4)
        await stop(client, task)

    run(body())
    assert got == {"b": True, "i": -42, "f": 3.0, "s": "hello"}, got
    assert type(got["f"]) is float
    assert client.counters["writes"] == 4 and client.counters["bad_messages"] == 0


def test_read_only_variable_ignores_cloud_writes():
    cloud = FakeCloud(THING)
    client = make(cloud)
    client.register("led", value=False)

    async def body():
        task = await start(client)
        cloud.write([{"n": "led", "vb": True}])
        await asyncio.sleep(0.05)
        await stop(client, task)

    run(body())
    assert client["led"] is False


def test_changes_are_pushed_as_one_pack():
    cloud = FakeCloud(THING)
    client = make(cloud)
    client.register("sw1", value=None)
    client.register("n", value=None)

    async def body():
        task = await start(client)
        client["sw1"] = True
        client["n"] = 5
        await until(lambda: cloud.sent("/e/o"))
        await stop(client, task)

    run(body())
    packs = cloud.pushes()
    assert packs == [[{"n": "sw1", "vb": True}, {"n": "n", "v": 5}]] or packs == [
        [{"n": "n", "v": 5}, {"n": "sw1", "vb": True}]
    ], packs
    assert client.counters["pushes"] == 1


def test_single_push_bytes():
    cloud = FakeCloud(THING)
    client = make(cloud)
    client.register("sw1", value=False)

    async def body():
        task = await start(client)
        await until(lambda: cloud.sent("/e/o"))
        client["sw1"] = True
        await until(lambda: len(cloud.sent("/e/o")) == 2)
        await stop(client, task)

    run(body())
    assert hexs(cloud.sent("/e/o")[1]) == "81a2006373773104f5"
    assert cloud.published[-1][2] == 1  # QoS 1


def test_value_stays_dirty_until_puback_and_is_resent_after_reconnect():
    cloud = FakeCloud(THING)
    client = make(cloud)
    client.register("t", value=1)

    async def body():
        task = await start(client)
        await until(lambda: cloud.pushed_values().get("t") == 1)
        cloud.fail_publishes = 1
        client["t"] = 2
        await until(lambda: cloud.lost)
        assert client.records["t"].dirty  # no PUBACK: still to be sent
        await until(lambda: cloud.pushed_values().get("t") == 2)
        await stop(client, task)

    run(body())
    assert cloud.connects == 2
    assert not client.records["t"].dirty


def test_value_changed_during_a_push_is_pushed_again():
    cloud = FakeCloud(THING)
    client = make(cloud)
    client.register("t", value=1)

    async def body():
        task = await start(client)
        await until(lambda: cloud.pushed_values().get("t") == 1)
        for i in range(2, 30):
            client["t"] = i
            await asyncio.sleep(0)
        await until(lambda: cloud.pushed_values().get("t") == 29)
        await stop(client, task)

    run(body())
    assert not client.records["t"].dirty


def _composite_case(obj, wire, check):
    cloud = FakeCloud(THING)
    client = make(cloud)
    seen = []
    obj.on_write = lambda c, o: seen.append(dict(o.value))
    client.register(obj)

    async def body():
        task = await start(client)
        cloud.write(wire)
        await until(lambda: seen)
        await stop(client, task)

    run(body())
    assert seen == [check], (seen, check)
    return cloud, client


def test_write_location():
    _composite_case(
        Location("loc"),
        [{"n": "loc:lat", "v": 45.5}, {"n": "loc:lon", "v": 9}],
        {"lat": 45.5, "lon": 9.0},
    )


def test_write_color():
    _composite_case(
        Color("col"),
        [{"n": "col:hue", "v": 10.0}, {"n": "col:sat", "v": 20.0}, {"n": "col:bri", "v": 30.0}],
        {"hue": 10.0, "sat": 20.0, "bri": 30.0},
    )


def test_write_colored_light():
    _composite_case(
        ColoredLight("cl"),
        [
            {"n": "cl:swi", "vb": True},
            {"n": "cl:hue", "v": 1.5},
            {"n": "cl:sat", "v": 2},
            {"n": "cl:bri", "v": 3.0},
        ],
        {"swi": True, "hue": 1.5, "sat": 2.0, "bri": 3.0},
    )


def test_write_dimmed_light():
    _composite_case(
        DimmedLight("dl"),
        [{"n": "dl:swi", "vb": False}, {"n": "dl:bri", "v": 40.0}],
        {"swi": False, "bri": 40.0},
    )


def test_write_schedule():
    _composite_case(
        Schedule("sc"),
        [
            {"n": "sc:frm", "v": 1700000000},
            {"n": "sc:to", "v": 1700003600},
            {"n": "sc:len", "v": 600},
            {"n": "sc:msk", "v": 4294967295},
        ],
        {"frm": 1700000000, "to": 1700003600, "len": 600, "msk": 4294967295},
    )


def test_write_television():
    _composite_case(
        Television("tv"),
        [
            {"n": "tv:swi", "vb": True},
            {"n": "tv:vol", "v": 30},
            {"n": "tv:mut", "vb": False},
            {"n": "tv:pbc", "v": 255},
            {"n": "tv:inp", "v": 16},
            {"n": "tv:cha", "v": 5},
        ],
        {"swi": True, "vol": 30, "mut": False, "pbc": 255, "inp": 16, "cha": 5},
    )


def test_composite_change_pushes_all_fields_together():
    cloud = FakeCloud(THING)
    client = make(cloud)
    client.register(DimmedLight("dl", swi=True, bri=10.0))

    async def body():
        task = await start(client)
        await until(lambda: cloud.sent("/e/o"))
        client["dl"].bri = 55.0
        await until(lambda: len(cloud.sent("/e/o")) == 2)
        await stop(client, task)

    run(body())
    assert cloud.pushes()[1] == [{"n": "dl:swi", "vb": True}, {"n": "dl:bri", "v": 55.0}]


# -- callbacks and scheduling ----------------------------------------------------------------


def test_raising_callbacks_are_counted_and_keep_the_variable():
    cloud = FakeCloud(THING)
    client = make(cloud)
    calls = []

    def bad_write(c, v):
        calls.append(v)
        raise ValueError("boom")

    reads = [0]

    def bad_read(c):
        reads[0] += 1
        if reads[0] > 1:
            raise OSError("sensor")
        return 1

    client.register("sw", value=False, on_write=bad_write)
    client.register("r", value=None, on_read=bad_read, interval=0.02)

    async def body():
        task = await start(client)
        cloud.write([{"n": "sw", "vb": True}])
        await until(lambda: len(calls) == 1)
        cloud.write([{"n": "sw", "vb": False}])
        await until(lambda: len(calls) == 2)
        await until(lambda: reads[0] >= 4)
        await stop(client, task)

    run(body())
    assert calls == [True, False]
    assert "sw" in client.records and "r" in client.records
    assert client.counters["callback_errors"] >= 4


def test_one_scheduler_runs_on_read_and_tasks_at_their_intervals():
    cloud = FakeCloud(THING)
    client = make(cloud)
    fast_n = [0]
    slow_n = [0]

    def tick(c, args):
        args[0] += 1

    client.register("r", value=None, on_read=lambda c: fast_n[0], interval=0.02)
    client.register(Task("slow", on_run=tick, interval=0.1, args=slow_n))

    def on_read(c):
        fast_n[0] += 1
        return fast_n[0]

    client.records["r"].on_read = on_read

    async def body():
        task = await start(client)
        t0 = ticks_ms()
        n0, s0 = fast_n[0], slow_n[0]
        await asyncio.sleep(0.5)
        dt = ticks_diff(ticks_ms(), t0)
        await stop(client, task)
        return dt, fast_n[0] - n0, slow_n[0] - s0

    dt, nf, ns = run(body())
    assert len(client.scheduler) == 2
    # Upper bounds are exact (never early); lower bounds leave room for a loaded machine.
    assert dt // 40 <= nf <= dt // 20 + 2, (dt, nf)
    assert dt // 200 <= ns <= dt // 100 + 1, (dt, ns)
    assert cloud.pushed_values()["r"] >= 2


def test_schedule_fires_on_active_when_its_window_opens():
    cloud = FakeCloud(THING)
    client = make(cloud)
    fired = []
    now = unix_time()
    sc = Schedule("sc", frm=now - 5, to=now + 100, len=100, msk=0, interval=0.02)
    sc.on_active = lambda c, value: fired.append(value)
    client.register(sc)

    async def body():
        task = await start(client)
        await until(lambda: fired)
        await asyncio.sleep(0.1)
        await stop(client, task)

    run(body())
    assert len(fired) == 1 and client["sc"].active


def test_closed_schedule_is_not_active():
    cloud = FakeCloud(THING)
    client = make(cloud)
    now = unix_time()
    client.register(Schedule("sc", frm=now - 500, to=now - 400, len=100, msk=0, interval=0.02))

    async def body():
        task = await start(client)
        await asyncio.sleep(0.06)
        await stop(client, task)

    run(body())
    assert not client["sc"].active


# -- sync mode -----------------------------------------------------------------------------------


def test_sync_mode_start_returns_connected_and_update_is_bounded():
    cloud = FakeCloud(THING)
    client = make(cloud, sync_mode=True)
    got = []
    client.register("sw1", value=False, on_write=lambda c, v: got.append(v))
    client.register("n", value=0)
    client.start()
    assert client.connected and client.thing_id == THING
    cloud.write([{"n": "sw1", "vb": True}])
    worst = 0
    for _ in range(20):
        t0 = ticks_ms()
        client.update()
        worst = max(worst, ticks_diff(ticks_ms(), t0))
        if got:
            break
    assert got == [True]
    client["n"] = 42
    for _ in range(20):
        t0 = ticks_ms()
        client.update()
        worst = max(worst, ticks_diff(ticks_ms(), t0))
        if cloud.pushed_values().get("n") == 42:
            break
    assert cloud.pushed_values().get("n") == 42
    assert worst < 100, worst  # each update() pauses 2 ms; the rest is the work itself
    assert hexs(cloud.sent("/c/up")[0]) == "da00010700816a312e342e312d73796e63"  # "1.4.1-sync"
    client.stop()
    client.update()


def test_stats_include_the_connection_counters():
    cloud = FakeCloud(THING)
    client = make(cloud)

    async def body():
        task = await start(client)
        cloud.write([{"n": "nobody", "v": 1}])
        await until(lambda: client.counters["unknown_records"])
        s = client.stats()
        await stop(client, task)
        return s

    s = run(body())
    for k in ("writes", "pushes", "callback_errors", "bad_messages", "reconnects"):
        assert k in s
    assert s["state"] == "ready" and "mqtt_messages_in" in s


def test_payload_records_round_trip_through_senml():
    # The fake decodes what the client pushes with tether.senml: keep that honest.
    assert senml.decode(bytes.fromhex("81a2006373773104f5")) == [{"n": "sw1", "vb": True}]


def test_default_roots_are_used_then_their_module_is_dropped():
    import sys

    cloud = FakeCloud(THING)
    client = make(cloud)

    async def body():
        task = await start(client)
        await stop(client, task)

    run(body())
    ssl = cloud.conn.kw["ssl"]
    assert ssl is not None
    assert cloud.conn.kw["server_hostname"] == "iot.arduino.cc"
    assert "tether.arduino.roots" not in sys.modules


def test_timezone_period_end_asks_for_last_values_again():
    now = unix_time()
    cloud = FakeCloud(
        THING,
        command=False,
        last_values=[{"n": "tz_offset", "v": 7200}, {"n": "tz_dst_until", "v": now + 1000}],
    )
    client = make(cloud)
    client.register("a", value=1)  # nothing uninitialised: asked once, at attach

    async def body():
        task = await start(client)
        await asyncio.sleep(0.15)  # LAST_VALUES_MS passes: nothing unset, not asked again
        assert len(cloud.sent("/shadow/o")) == 1
        cloud.send_command(0x010900, [3600, now - 1])  # this timezone period is over
        await until(lambda: client["tz_offset"] == 3600)
        await until(lambda: client["tz_offset"] == 7200)
        await stop(client, task)

    run(body())
    assert len(cloud.sent("/shadow/o")) == 2  # at attach, then for the new period
    assert client["tz_dst_until"] == now + 1000


# -- robustness of register, packs and TLS -------------------------------------------------------


def test_on_read_raising_at_register_is_counted_and_the_variable_registered():
    client = ArduinoCloudClient(device_id=DEV, username=DEV, password="s3cret")
    sink = Sink()
    reads = [0]

    def flaky(c):
        reads[0] += 1
        if reads[0] == 1:
            raise OSError("sensor not ready")
        return 21

    log.basicConfig(stream=sink)
    try:
        obj = client.register("temp", value=None, on_read=flaky, interval=0.01)
    finally:
        log.basicConfig()
    assert client.records["temp"] is obj and obj.value is None and not obj.dirty
    assert client.counters["callback_errors"] == 1
    assert "temp" in sink.text and "sensor not ready" in sink.text
    client.scheduler.run_due(client)  # the next turn reads it
    assert client["temp"] == 21 and obj.dirty and reads[0] == 2
    # A working on_read still gives the first value at once.
    client.register("ok", value=None, on_read=lambda c: 5)
    assert client["ok"] == 5 and client.counters["callback_errors"] == 1


def test_one_badly_typed_record_does_not_lose_the_rest_of_the_pack():
    cloud = FakeCloud(THING)
    client = make(cloud)
    got = []
    client.register("sw1", value=False, on_write=lambda c, v: got.append(v))
    client.register("x", value=1.5, on_write=lambda c, v: got.append(v))
    client.register("k", value=1, on_write=lambda c, v: got.append(v))

    async def body():
        task = await start(client)
        # {0: "sw1", 4: true}, {0: "x", 2: "oops"}: the second is not SenML (v is text).
        cloud.send(cloud.thing("e/i"), bytes.fromhex("82a2006373773104f5a200617802646f6f7073"))
        await until(lambda: got)
        # Refused by the decoder (x's v is text), by the variable (k is a number) and an
        # array in place of a record; the write of x between them still applies.
        pack = cbor.dumps([{0: "x", 2: "no"}, {0: "k", 4: True}, [1], {0: "x", 2: 2.5}])
        cloud.send(cloud.thing("e/i"), pack)
        await until(lambda: len(got) == 2)
        await stop(client, task)

    run(body())
    assert got == [True, 2.5] and client["sw1"] is True and client["k"] == 1
    assert client.counters["bad_messages"] == 2
    assert client.counters["bad_records"] == 4
    assert client.counters["writes"] == 2


def test_last_values_update_with_a_bad_record_still_initialises_the_others():
    cloud = FakeCloud(THING, legacy=False)
    client = make(cloud)
    client.register("a", value=None)
    client.register("b", value=None)

    async def body():
        task = await start(client)
        bad = cbor.dumps([{0: "a", 2: 7}, {0: "b", 2: b"raw"}])  # b's v is a byte string
        cloud.send_command(0x010600, [bad])
        await until(lambda: client["a"] is not None)
        await stop(client, task)

    run(body())
    assert client["a"] == 7 and client["b"] is None
    assert client.counters["bad_records"] == 1 and client.counters["bad_messages"] == 1


def test_ssl_params_become_the_tls_context_of_the_one_mqtt_client():
    # The translation itself is tether.arduino.ssl_params' (dt_arduino_ssl_params.py); here:
    # the client asks for it once, at its first connect, and the MQTT client keeps it.
    cloud = FakeCloud(THING)
    client = make(cloud)
    calls = []
    real = client.tls_context

    def counting():
        calls.append(1)
        return real()

    client.tls_context = counting

    async def body():
        task = await start(client)
        cloud.kill()
        await until(lambda: cloud.connects == 2 and client.connected)
        await stop(client, task)

    run(body())
    assert calls == [1] and cloud.factories == 1
    assert cloud.conn.kw["ssl"] is not None


# -- offline cloud writes (last values at every reconnect; cloud wins on sync) -------------------


def test_a_cloud_write_made_while_offline_reaches_on_write_after_reconnect():
    cloud = FakeCloud(THING, legacy=False, last_values=[{"n": "sw", "vb": False}])
    client = make(cloud)
    seen = []
    client.register("sw", value=False, on_write=lambda c, v: seen.append(v))
    client.register("led", value=False)  # read-only: the cloud's value never wins

    async def body():
        task = await start(client)
        await until(lambda: not client.records["sw"].dirty and cloud.pushes())
        cloud.refuse_connects = 2
        cloud.kill()  # offline; meanwhile the dashboard writes to the shadow
        cloud.last_values = [{"n": "sw", "vb": True}, {"n": "led", "vb": True}]
        await until(lambda: cloud.connects >= 4 and client.connected)
        await until(lambda: seen)
        await stop(client, task)

    run(body())
    assert seen == [True] and client["sw"] is True
    assert client["led"] is False
    assert len(cloud.sent("/c/up")) >= 6  # LastValuesBegin asked on both attaches


def test_a_local_change_not_yet_acknowledged_wins_over_last_values():
    cloud = FakeCloud(THING, legacy=False, last_values=[{"n": "sw", "vb": False}])
    client = make(cloud)
    seen = []
    client.register("sw", value=False, on_write=lambda c, v: seen.append(v))

    async def body():
        task = await start(client)
        await until(lambda: cloud.pushes())
        cloud.fail_publishes = 1  # the next push dies in flight: sw stays dirty
        client["sw"] = True
        await until(lambda: cloud.lost)
        assert client.records["sw"].dirty
        await until(lambda: cloud.pushed_values().get("sw") is True)
        await stop(client, task)

    run(body())
    assert seen == [] and client["sw"] is True  # the cloud's older False did not win
