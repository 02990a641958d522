"""tether.arduino records, composite types and wire encoders, on both interpreters."""

from harness import raises
from tether import senml
from tether.arduino import (
    ArduinoCloudClient,
    Color,
    ColoredLight,
    DimmedLight,
    Location,
    Schedule,
    Task,
    Television,
    protocol,
)
from tether.arduino.composites import schedule_active
from tether.arduino.records import CloudObject
from tether.arduino.scheduler import Scheduler
from tether.cbor import CBORError
from tether.compat import ticks_add, ticks_ms

THING = "5f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"


def _hex(b):
    return "".join("%02x" % x for x in b)


# -- encoders, byte for byte (docs/protocols.md section 1.4) ----------------------------------


def test_device_begin_bytes():
    assert _hex(protocol.device_begin("1.4.1-async")) == ("da00010700816b312e342e312d6173796e63")


def test_thing_begin_bytes():
    assert _hex(protocol.thing_begin()) == "da000103008160"


def test_last_values_begin_bytes():
    assert _hex(protocol.last_values_begin()) == "da0001050080"


def test_get_last_values_bytes():
    assert _hex(protocol.get_last_values()) == ("81a20063723a6d036d6765744c61737456616c756573")


def test_scalar_push_bytes():
    recs = []
    CloudObject("sw1", value=True).records(recs)
    assert _hex(protocol.values(recs)) == "81a2006373773104f5"
    recs = []
    CloudObject("temperature", value=25.5).records(recs)
    assert _hex(protocol.values(recs)) == "81a2006b74656d706572617475726502fb4039800000000000"


def test_a_push_written_from_the_variables_is_the_pack_of_their_records():
    # protocol.pack(objs) writes the pack without record dicts; the bytes must be exactly
    # what values() makes of the same variables' records (scalars of every kind, composites).
    objs = [
        CloudObject("sw1", value=True),
        CloudObject("n", value=-7),
        CloudObject("big", value=70000),
        CloudObject("f", value=25.5),
        CloudObject("s", value="h\u00e9llo"),
        ColoredLight("cl", swi=False, hue=1.0, sat=2.0, bri=3.0),
    ]
    recs = []
    for o in objs:
        o.records(recs)
    assert protocol.pack(objs) == protocol.values(recs)
    assert _hex(protocol.pack(objs[:1])) == "81a2006373773104f5"


def test_composite_records_carry_every_field_in_order():
    recs = []
    ColoredLight("cl", swi=True, hue=1.0, sat=2.0, bri=3.0).records(recs)
    assert recs == [
        {"n": "cl:swi", "vb": True},
        {"n": "cl:hue", "v": 1.0},
        {"n": "cl:sat", "v": 2.0},
        {"n": "cl:bri", "v": 3.0},
    ]


# -- decoding cloud commands ------------------------------------------------------------------


def test_decode_timezone_down():
    raw = bytes.fromhex("da0001090082190e101a6553f100")
    assert protocol.decode_command(raw) == (protocol.TIMEZONE_DOWN, (3600, 1700000000))


def test_decode_thing_update_and_detach():
    tag, arg = protocol.decode_command(protocol.command(protocol.THING_UPDATE, [THING]))
    assert (tag, arg) == (protocol.THING_UPDATE, THING)
    tag, arg = protocol.decode_command(protocol.command(protocol.THING_DETACH, [THING]))
    assert (tag, arg) == (protocol.THING_DETACH, THING)


def test_decode_last_values_update_returns_the_wrapped_pack():
    pack = senml.encode([{"n": "x", "v": 1}])
    tag, arg = protocol.decode_command(protocol.command(protocol.LAST_VALUES_UPDATE, [pack]))
    assert tag == protocol.LAST_VALUES_UPDATE and arg == pack


def test_decode_command_refuses_bad_shapes():
    bad = [
        b"",
        b"\x80",  # untagged array
        protocol.command(protocol.THING_UPDATE, "x"),  # tag on a string
        protocol.command(protocol.THING_UPDATE, []),
        protocol.command(protocol.THING_UPDATE, [5]),
        protocol.command(protocol.LAST_VALUES_UPDATE, ["not bytes"]),
        protocol.command(protocol.TIMEZONE_DOWN, [1]),
        protocol.command(protocol.TIMEZONE_DOWN, [1.5, 2]),
        b"\x81" * 50 + b"\x00",  # deeper than the command limit
    ]
    for raw in bad:
        raises(CBORError, protocol.decode_command, raw)


def test_thing_ids_must_be_uuids():
    assert protocol.check_thing_id(THING) == THING
    assert protocol.check_thing_id("") == ""
    for bad in ("#", "+", "a/b", THING[:-1] + "#", THING[:-1] + "+", THING.replace("-", "/"),
                "x" * 36, THING + "0", "x" * 70000, 5, None, b"x"):  # fmt: skip
        raises(protocol.ProtocolError, protocol.check_thing_id, bad)


def test_topics():
    assert protocol.device_topic("d", "c/up") == "/a/d/d/c/up"
    assert protocol.thing_topic("t", "shadow/o") == "/a/t/t/shadow/o"


# -- records ----------------------------------------------------------------------------------


def test_scalar_kind_is_fixed_by_the_first_value():
    v = CloudObject("x", value=1.5)
    v.value = 2  # int into a float variable: the cloud's float/int quirk
    assert v.value == 2.0 and type(v.value) is float
    raises(TypeError, setattr, v, "value", "text")
    raises(TypeError, setattr, v, "value", True)
    b = CloudObject("b", value=False)
    raises(TypeError, setattr, b, "value", 1)
    i = CloudObject("i", value=3)
    i.value = 4.0  # integral float into an int variable
    assert i.value == 4 and type(i.value) is int
    raises(TypeError, setattr, i, "value", 4.5)


def test_dirty_until_acked_with_the_generation_that_was_sent():
    v = CloudObject("x", value=1)
    assert v.dirty
    gen = v._gen
    v.value = 2  # changed again while the first push is in flight
    v.acked(gen)
    assert v.dirty  # the second value was not acknowledged yet
    v.acked(v._gen)
    assert not v.dirty
    v.value = 2  # same value: nothing to send
    assert not v.dirty


def test_cloud_values_are_not_sent_back():
    v = CloudObject("x", value=1)
    v.acked(v._gen)
    v.cloud_set(None, 7)
    assert v.value == 7 and not v.dirty


def test_unexpected_keyword_is_a_type_error():
    raises(TypeError, CloudObject, "x", colour=1)
    raises(TypeError, Location, "x", lat=1.0, alt=2.0)


def test_composite_fields_read_and_write_as_attributes():
    loc = Location("home", lat=1, lon=2.5)
    assert loc.lat == 1.0 and type(loc.lat) is float and loc.lon == 2.5
    assert loc.initialized and loc.dirty
    loc.acked(loc._gen)
    loc.lat = 3.0
    assert loc.dirty and loc.value == {"lat": 3.0, "lon": 2.5}
    raises(TypeError, setattr, loc, "lat", "north")
    raises(AttributeError, getattr, loc, "alt")


def test_composite_value_is_a_dict_of_fields():
    loc = Location("home", value={"lat": 1.0, "lon": 2.0})
    assert loc.value == {"lat": 1.0, "lon": 2.0} and loc.initialized
    loc.value = {"lon": 3}
    assert loc.lon == 3.0
    raises(TypeError, setattr, loc, "value", {"alt": 1.0})
    raises(TypeError, setattr, loc, "value", 5)


def test_partially_set_composite_is_not_initialized():
    c = Color("c", hue=1.0)
    assert not c.initialized and not c.dirty
    c.sat = 2.0
    c.bri = 3.0
    assert c.initialized and c.dirty


def test_composite_field_kinds():
    tv = Television("tv", swi=True, vol=10, mut=False, pbc=3, inp=16, cha=7)
    assert tv.initialized
    raises(TypeError, setattr, tv, "vol", 1.5)
    raises(TypeError, setattr, tv, "swi", 1)
    d = DimmedLight("d", swi=False, bri=50)
    assert d.bri == 50.0 and type(d.bri) is float
    s = Schedule("s", frm=1, to=2, len=3, msk=0xFFFFFFFF)
    assert s.msk == 0xFFFFFFFF


def test_television_constants_match_the_original():
    assert Television.PLAYBACK_NONE == 255 and Television.PLAYBACK_STOP == 7
    assert Television.INPUT_AUX1 == 0 and Television.INPUT_HDMI1 == 16
    assert Television.INPUT_XBOX == 60 and Television.INPUT_TV == 55


def test_task_is_never_pushed_nor_waits_for_the_cloud():
    t = Task("t", on_run=lambda client, args: None, interval=0.5)
    assert t.initialized and not t.dirty and t.scheduled


def test_client_item_access_like_the_original():
    client = ArduinoCloudClient(device_id="d", username="d", password="p")
    client.register("led", value=False)
    client.register(ColoredLight("cl", swi=True, hue=1.0, sat=2.0, bri=3.0))
    client["led"] = True
    assert client["led"] is True
    assert client["cl"].swi is True
    client["cl"].bri = 9.0
    assert client["cl"].bri == 9.0
    assert "led" in client and "nope" not in client
    assert client.get("tz_offset", 0) == 0
    assert client.get("nope", 5) == 5


def test_register_with_on_read_takes_its_first_value():
    client = ArduinoCloudClient(device_id="d", username="d", password="p")
    client.register("t", value=None, on_read=lambda c: 21.5)
    assert client["t"] == 21.5


def test_default_ports_follow_the_auth_method():
    assert ArduinoCloudClient("d", "d", "p").port == 8884
    c = ArduinoCloudClient("d", ssl_params={"keyfile": "k.der", "certfile": "c.der"})
    assert c.port == 8885 and c.server == "iot.arduino.cc"
    c = ArduinoCloudClient("d", "d", "p", server="127.0.0.1", port=1234)
    assert (c.server, c.port) == ("127.0.0.1", 1234)


# -- Schedule windows (msk layout of ArduinoIoTCloud's CloudSchedule) --------------------------

_START = 1633305600  # Monday 2021-10-04 00:00:00 UTC
_END = 1633651200  # Friday 2021-10-08 00:00:00 UTC


def test_schedule_one_shot():
    frm = 1636156800
    assert schedule_active(frm, frm + 86399, 600, 0, frm)
    assert schedule_active(frm, frm + 86399, 600, 0, frm + 600)
    assert not schedule_active(frm, frm + 86399, 600, 0, frm + 601)
    assert not schedule_active(frm, frm + 86399, 600, 0, frm - 1)


def test_schedule_fixed_delta_every_20_minutes():
    msk = (1 << 30) | (1 << 26) | 20  # unit minutes, fixed delta, 20 -> 1140850708
    assert msk == 1140850708
    cases = [
        (_START, True),
        (_START + 600, True),
        (_START + 601, False),
        (_START + 1199, False),
        (_START + 1200, True),
        (1633650300, True),  # Thursday 23:45: 300 s into a window
        (1633650900, False),
        (_END, False),  # `to` is excluded
        (_START - 1, False),
    ]
    for now, want in cases:
        assert schedule_active(_START, _END, 600, msk, now) == want, now


def test_schedule_weekly_on_monday_tuesday_saturday():
    msk = (2 << 26) | 0b1000110  # Sunday is bit 0
    assert msk == 134217798
    day = 86400
    assert schedule_active(_START, _END, 600, msk, _START + 300)  # Monday 00:05
    assert not schedule_active(_START, _END, 600, msk, _START + 1500)  # Monday 00:25
    assert schedule_active(_START, _END, 600, msk, _START + day + 300)  # Tuesday
    assert not schedule_active(_START, _END, 600, msk, _START + 2 * day + 300)  # Wednesday


def test_schedule_monthly_and_yearly():
    monthly = (3 << 26) | 6  # the 6th of every month
    yearly = (4 << 26) | (11 << 8) | 6  # 6 December (months count from 0)
    end = 1759536000
    assert schedule_active(_START, end, 600, monthly, 1633478700)  # 2021-10-06 00:05
    assert not schedule_active(_START, end, 600, monthly, 1633392300)  # 2021-10-05 00:05
    assert schedule_active(_START, end, 600, yearly, 1638749100)  # 2021-12-06 00:05
    assert not schedule_active(_START, end, 600, yearly, 1636157100)  # 2021-11-06 00:05


def test_schedule_unknown_type_or_zero_delta_is_never_active():
    assert not schedule_active(_START, 0, 600, 0xFFFFFFFF, _START)
    assert not schedule_active(_START, 0, 600, 1 << 26, _START)  # fixed delta of 0


_WED_NOON = 1736942400  # Wednesday 2025-01-15 12:00:00 UTC


def _on_fake_clock(unix_s, fn):
    # An esp32/stm32-like RTC: time.time() counts from 2000, set to unix_s.
    from tether.hal import clock
    from tether.hal.fakes import FakeClock

    clock.set_clock(FakeClock(2000, unix_s))
    try:
        return fn()
    finally:
        clock.set_clock(None)


def test_schedule_runs_on_the_hal_clock_of_a_2000_epoch_port():
    from tether.arduino.records import unix_time

    client = ArduinoCloudClient(device_id="d", username="d", password="p")
    wednesdays = (2 << 26) | (1 << 3)  # weekly, Wednesday only (Sunday is bit 0)
    frm = _WED_NOON - 7 * 86400 - 1800  # from the Wednesday before, 11:30 for an hour

    def at(now):
        weekly = Schedule("w", frm=frm, to=0, len=3600, msk=wednesdays)
        once = Schedule("o", frm=now - 10, to=now + 10, len=60, msk=0)

        def turn():
            t = unix_time()
            weekly.run(client)
            once.run(client)
            return t, weekly.active, once.active

        return _on_fake_clock(now, turn)

    t, weekly_on, once_on = at(_WED_NOON)
    assert _WED_NOON <= t <= _WED_NOON + 2, t
    assert weekly_on and once_on
    t, weekly_on, once_on = at(_WED_NOON + 86400)  # Thursday noon
    assert not weekly_on and once_on
    t, weekly_on, once_on = at(_WED_NOON + 3600)  # Wednesday 13:00, after the hour
    assert not weekly_on and once_on
    client.tz_offset = -3600  # local time is UTC-1: 13:00 UTC is 12:00 local, inside
    t, weekly_on, once_on = at(_WED_NOON + 3600)
    assert weekly_on and not once_on  # the one-shot window was set in UTC


# -- the scheduler ------------------------------------------------------------------------------


class _Ticker:
    def __init__(self, name, interval, fail=False, backoff=None):
        self.name = name
        self.interval = interval
        self.backoff = backoff
        self.fail = fail
        self.runs = 0

    def run(self, client):
        self.runs += 1
        if self.fail:
            raise ValueError("boom")

    def next_interval_s(self):
        return CloudObject.next_interval_s(self)


def test_scheduler_runs_each_entry_at_its_interval_from_one_loop():
    errors = []
    s = Scheduler(lambda obj, exc: errors.append((obj.name, str(exc))))
    a = _Ticker("a", 0.1)
    b = _Ticker("b", 0.25, fail=True)
    t0 = ticks_ms()
    s.add(a, t0)
    s.add(b, t0)
    s.add(a, t0)  # twice: still one entry
    assert len(s) == 2
    assert s.run_due(None, t0) == 100  # both ran; a is due again first
    assert (a.runs, b.runs) == (1, 1)
    assert s.run_due(None, ticks_add(t0, 50)) == 50  # nothing due yet
    for ms in (100, 200, 250, 300):
        s.run_due(None, ticks_add(t0, ms))
    assert (a.runs, b.runs) == (4, 2)
    assert errors == [("b", "boom"), ("b", "boom")]  # reported, and b kept its place
    s.remove(b)
    assert len(s) == 1


def test_scheduler_after_a_stall_restarts_from_now_instead_of_bursting():
    s = Scheduler(None)
    a = _Ticker("a", 0.1)
    t0 = ticks_ms()
    s.add(a, t0)
    s.run_due(None, t0)
    s.run_due(None, ticks_add(t0, 5000))  # the loop was blocked for 5 s
    assert a.runs == 2
    assert s.run_due(None, ticks_add(t0, 5050)) == 50
    assert a.runs == 2


def test_scheduler_backoff_stretches_the_interval_up_to_5_s():
    a = _Ticker("a", 1.0, backoff=2.0)
    assert [a.next_interval_s() for _ in range(4)] == [2.0, 4.0, 5.0, 5.0]
