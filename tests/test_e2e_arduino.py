"""End to end: the real firmware (firmware/main.py + tether.arduino) on the MicroPython unix
port against the cloud emulator over loopback TLS.

The emulator speaks through PyPI cbor2, the device through tether.cbor/senml: every exchange
here is also a compatibility test between the two implementations.
"""

import uuid
from pathlib import Path

import pytest
from cloudsim_fixtures import cloudsim  # noqa: F401

from tools.cloudsim.board import BoardProcess, write_board_dir

pytestmark = pytest.mark.timeout(90)

ROOT = Path(__file__).resolve().parent.parent

# The app the simulated board runs: one variable of every kind; on_write prints what arrived
# (composites field by field, in wire order) so the test can read it from the output.
APP = """
from tether.arduino import Color, ColoredLight, DimmedLight, Location, Schedule, Television


def show(name):
    def on_write(client, value):
        obj = client.records[name]
        if obj._FIELDS:
            text = " ".join("%s=%r" % (f, getattr(obj, f)) for f in obj._FIELDS)
        else:
            text = repr(value)
        print("e2e: write %s %s" % (name, text))
        if name == "count" and value is not None:
            client["temp"] = value * 1.5  # round trip: cloud -> device -> cloud
    return on_write


def setup(client):
    client.DISCOVERY_FIRST_MS = 300  # keep the not-linked retries short for the test
    client.register("sw", value=None, on_write=show("sw"))
    client.register("count", value=None, on_write=show("count"))
    client.register("msg", value=None, on_write=show("msg"))
    client.register("temp", value=20.5)
    client.register(Location("loc", lat=1.5, lon=-2.25, on_write=show("loc")))
    client.register(Color("col", hue=10.0, sat=20.0, bri=30.0, on_write=show("col")))
    client.register(
        ColoredLight("light", swi=True, hue=1.0, sat=2.0, bri=3.0, on_write=show("light"))
    )
    client.register(DimmedLight("dim", swi=False, bri=50.0, on_write=show("dim")))
    client.register(
        Schedule("sched", frm=1700000000, to=1700003600, len=600, msk=0, on_write=show("sched"))
    )
    client.register(
        Television("tv", swi=True, vol=20, mut=False, pbc=255, inp=3, cha=7, on_write=show("tv"))
    )
    print("e2e: ready")
"""

PUSHED = {
    "temp": 10.5,  # 20.5 first, then 7 * 1.5 once the last value of count arrived
    "loc:lat": 1.5,
    "loc:lon": -2.25,
    "col:hue": 10.0,
    "col:sat": 20.0,
    "col:bri": 30.0,
    "light:swi": True,
    "light:hue": 1.0,
    "light:sat": 2.0,
    "light:bri": 3.0,
    "dim:swi": False,
    "dim:bri": 50.0,
    "sched:frm": 1700000000,
    "sched:to": 1700003600,
    "sched:len": 600,
    "sched:msk": 0,
    "tv:swi": True,
    "tv:vol": 20,
    "tv:mut": False,
    "tv:pbc": 255,
    "tv:inp": 3,
    "tv:cha": 7,
}

LAST_VALUES = {"sw": True, "count": 7, "msg": "hello"}


@pytest.fixture
def boards(cloudsim, tmp_path):  # noqa: F811
    """start(device_id, auth="password", **write_board_dir kw) -> BoardProcess; all stopped."""
    started = []

    def start(device_id, auth="password", **kw):
        d = tmp_path / ("board-%d" % len(started))
        settings = write_board_dir(cloudsim, device_id, d, app="e2e_app", auth=auth, **kw)
        (d / "e2e_app.py").write_text(APP)
        proc = BoardProcess(settings)
        started.append(proc)
        proc.wait_line("e2e: ready", timeout=20)
        return proc

    try:
        yield start
    finally:
        for proc in started:
            proc.stop()


def new_id():
    return str(uuid.uuid4())


def assert_pushed_values(sim, thing_id):
    for name, want in PUSHED.items():
        got = sim.wait_for_value(thing_id, name, want, timeout=10)
        assert got == want and type(got) is type(want), (name, got, want)


def assert_writes_reach_on_write(sim, thing_id, board):
    """Every kind of write from the cloud arrives whole at on_write."""
    writes = [
        ("sw", False, "e2e: write sw False"),
        ("msg", "from the cloud", "e2e: write msg 'from the cloud'"),
        ("loc", {"lat": 3.0, "lon": 4.5}, "e2e: write loc lat=3.0 lon=4.5"),
        ("col", {"hue": 120.0, "sat": 50.0, "bri": 75.0}, "e2e: write col hue=120.0 sat=50.0"),
        (
            "light",
            {"swi": False, "hue": 200.0, "sat": 10.0, "bri": 20.0},
            "e2e: write light swi=False hue=200.0 sat=10.0 bri=20.0",
        ),
        ("dim", {"swi": True, "bri": 12.5}, "e2e: write dim swi=True bri=12.5"),
        (
            "sched",
            {"frm": 1800000000, "to": 1800000600, "len": 60, "msk": 0xFFFFFFFF},
            "e2e: write sched frm=1800000000 to=1800000600 len=60 msk=4294967295",
        ),
        (
            "tv",
            {"swi": False, "vol": 55, "mut": True, "pbc": 3, "inp": 12, "cha": 101},
            "e2e: write tv swi=False vol=55 mut=True pbc=3 inp=12 cha=101",
        ),
    ]
    for name, value, line in writes:
        mark = len(board.lines)
        sim.write(thing_id, name, value)
        board.wait_line(line, timeout=10, start=mark)
    # cloud -> device -> cloud: on_write of count sets temp = count * 1.5
    sim.write(thing_id, "count", 9)
    assert sim.wait_for_value(thing_id, "temp", 13.5, timeout=10) == 13.5


def test_password_auth_legacy_flow_last_values_and_writes(cloudsim, boards):  # noqa: F811
    dev = cloudsim.add_device(new_id(), secret="s3cret-" + new_id()[:8])
    cloudsim.set_values(dev.thing_id, LAST_VALUES)
    board = boards(dev.id)
    board.wait_line("(legacy flow)", timeout=15)
    assert cloudsim.wait_connected(dev.id).auth == "password"
    # last values (getLastValues on shadow/o) initialised the variables that had none
    board.wait_line("e2e: write sw True")
    board.wait_line("e2e: write count 7")
    board.wait_line("e2e: write msg 'hello'")
    assert cloudsim.events(dev.id, "command") and any(
        e["text"] == "getLastValues" for e in cloudsim.events(dev.id, "command")
    )
    assert_pushed_values(cloudsim, dev.thing_id)
    assert_writes_reach_on_write(cloudsim, dev.thing_id, board)
    assert cloudsim.device(dev.id).lib_version == "1.4.1-async"


def test_certificate_auth_command_flow(cloudsim, boards):  # noqa: F811
    dev = cloudsim.add_device(new_id(), certificate=True)
    cloudsim.set_values(dev.thing_id, LAST_VALUES)
    # No legacy thing_id record: only the command flow (ThingBegin -> ThingUpdate) answers.
    cloudsim.set_knobs(mute=["thing_id"])
    board = boards(dev.id, auth="certificate")
    board.wait_line("(command flow)", timeout=15)
    assert cloudsim.wait_connected(dev.id).auth == "certificate"
    cloudsim.wait_event(dev.id, "command", "LastValuesBegin")
    board.wait_line("e2e: write count 7")  # LastValuesUpdate: a bstr-wrapped SenML pack
    board.wait_line("e2e: write msg 'hello'")
    assert_pushed_values(cloudsim, dev.thing_id)
    assert_writes_reach_on_write(cloudsim, dev.thing_id, board)
    cloudsim.send_timezone(dev.id, 7200, 1900000000)
    board.wait_line("timezone offset 7200 s until 1900000000", timeout=10)


def test_malformed_replies_are_survived(cloudsim, boards):  # noqa: F811
    dev = cloudsim.add_device(new_id(), secret="pw")
    cloudsim.set_values(dev.thing_id, LAST_VALUES)
    cloudsim.set_knobs(malformed=["thing_id", "thing_update"])
    board = boards(dev.id)
    # (the topic may be logged as str or, from a bytes-topic router, as bytes)
    line = board.lines[board.wait_line("bad message on", timeout=15)]
    assert "/a/d/%s/" % dev.id in line
    assert cloudsim.device(dev.id).connected  # still connected, still asking
    cloudsim.set_knobs(malformed=[])
    board.wait_line("attached to thing %s" % dev.thing_id, timeout=15)
    board.wait_line("e2e: write count 7", timeout=10)


def test_not_linked_then_linked(cloudsim, boards):  # noqa: F811
    dev = cloudsim.add_device(new_id(), secret="pw", thing_id="")
    board = boards(dev.id)
    board.wait_line("device not linked to a thing", timeout=15)
    assert cloudsim.wait_connected(dev.id)  # connected, but attached to nothing
    thing = str(uuid.uuid4())
    cloudsim.set_values(thing, LAST_VALUES)
    cloudsim.link(dev.id, thing)
    board.wait_line("attached to thing %s" % thing, timeout=15)
    board.wait_line("e2e: write count 7")
    assert cloudsim.wait_for_value(thing, "temp", 10.5, timeout=10) == 10.5


def test_detach_then_reattach(cloudsim, boards):  # noqa: F811
    dev = cloudsim.add_device(new_id(), secret="pw")
    thing = dev.thing_id
    cloudsim.set_values(thing, LAST_VALUES)
    board = boards(dev.id)
    board.wait_line("attached to thing %s" % thing, timeout=15)
    cloudsim.wait_for_value(thing, "temp")
    mark = cloudsim.last_seq()
    cloudsim.detach(dev.id)
    board.wait_line("detached from thing %s" % thing, timeout=10)
    cloudsim.wait_event(dev.id, "unsubscribed", "/a/t/%s/e/i" % thing, after=mark)
    board.wait_line("device not linked to a thing", timeout=10)  # asked again: not linked
    mark = len(board.lines)
    cloudsim.link(dev.id, thing)
    board.wait_line("attached to thing %s" % thing, timeout=15, start=mark)
    cloudsim.write(thing, "count", 4)
    assert cloudsim.wait_for_value(thing, "temp", 6.0, timeout=10) == 6.0


def test_reconnects_and_resyncs_after_drop_and_emulator_restart(cloudsim, boards):  # noqa: F811
    dev = cloudsim.add_device(new_id(), secret="pw")
    cloudsim.set_values(dev.thing_id, LAST_VALUES)
    board = boards(dev.id)
    board.wait_line("(legacy flow)", timeout=15)
    cloudsim.wait_for_value(dev.thing_id, "temp")
    # 1. the connection is cut (network loss): the device comes back by itself
    mark = len(board.lines)
    assert cloudsim.drop(dev.id)
    board.wait_line("attached to thing", timeout=20, start=mark)
    # 2. the whole emulator restarts (same ports, same registry and values)
    mark = len(board.lines)
    cloudsim.restart()
    board.wait_line("attached to thing %s" % dev.thing_id, timeout=30, start=mark)
    cloudsim.wait_connected(dev.id, timeout=10)
    assert cloudsim.device(dev.id).connects >= 3
    # resynchronised: writes reach the device and its pushes reach the cloud again
    mark = len(board.lines)
    cloudsim.write(dev.thing_id, "count", 2)
    board.wait_line("e2e: write count 2", timeout=10, start=mark)
    assert cloudsim.wait_for_value(dev.thing_id, "temp", 3.0, timeout=10) == 3.0


def test_wrong_secret_is_refused(cloudsim, boards):  # noqa: F811
    dev = cloudsim.add_device(new_id(), secret="right")
    board = boards(dev.id, secret="wrong-secret-value")
    cloudsim.wait_event(dev.id, "refused", timeout=15)
    board.wait_line("connection refused", timeout=10)  # CONNACK 5, reported by the device
    assert not cloudsim.device(dev.id).connected
    assert cloudsim.device(dev.id).connects == 0
    assert "wrong-secret-value" not in board.output()  # the secret is never printed


def test_device_keeps_trying_after_a_refusal(cloudsim, boards):  # noqa: F811
    # A refusal is not fatal: the session backs off and tries again (and gets in once the
    # cloud accepts it).
    dev = cloudsim.add_device(new_id(), secret="right")
    board = boards(dev.id, secret="wrong")
    first = cloudsim.wait_event(dev.id, "refused", timeout=15)
    cloudsim.wait_event(dev.id, "refused", timeout=6, after=first["seq"])  # backed off, again
    assert board.proc.poll() is None  # the firmware is still running
    cloudsim.store.add_device(dev.id, secret="wrong")  # the cloud now accepts that secret
    cloudsim.wait_connected(dev.id, timeout=40)
