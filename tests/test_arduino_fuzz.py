"""Property tests: nothing the cloud sends makes ArduinoCloudClient raise or misbehave.

Random and mutated payloads go straight into the client's message handlers on every
cloud -> device topic of an attached client (no connection needed). Whatever arrives: no
exception escapes, a thing id that is not a UUID never gets in, and variables only ever
hold values of their own kind.
"""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tether import cbor, senml
from tether.arduino import ArduinoCloudClient, ColoredLight, protocol
from tether.cbor import Tag

DEV = "3a1c5e1e-7d1b-4c2e-9f00-7e57e7e57001"
THING = "5f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
TOPICS = ["/a/t/%s/e/i" % THING, "/a/t/%s/shadow/i" % THING, "/a/d/%s/c/dw" % DEV]
TOPICS.append("/a/d/%s/e/i" % DEV)

SEEDS = [
    senml.encode([{"n": "sw1", "vb": True}, {"n": "level", "v": 2.5}]),
    senml.encode(
        [{"n": "cl:swi", "vb": True}, {"n": "cl:hue", "v": 1.0}, {"n": "name", "vs": "x"}]
    ),
    senml.encode([{"n": "thing_id", "vs": THING}]),
    cbor.dumps(Tag(0x010400, [THING])),
    cbor.dumps(Tag(0x010600, [senml.encode([{"n": "level", "v": 1}])])),
    cbor.dumps(Tag(0x010900, [3600, 1700000000])),
]


# The handlers the client routes each topic to once attached (tether.cloud.router runs them
# under the same guard as here: a raise is a counted bad message, never an escape).
HANDLERS = dict(zip(TOPICS, ("_on_write", "_on_shadow", "_on_command", "_on_device_pack")))


def _deliver(client, topic, payload):
    try:
        getattr(client, HANDLERS[topic])(topic.encode(), payload)
    except Exception as exc:
        client.bad_message(topic, exc)


def _client():
    client = ArduinoCloudClient(device_id=DEV, username=DEV, password="pw")
    client.register("sw1", value=False, on_write=lambda c, v: None)
    client.register("level", value=1.0, on_write=lambda c, v: None)
    client.register("name", value="a", on_write=lambda c, v: None)
    client.register(ColoredLight("cl", on_write=lambda c, v: None))
    client.thing_id = THING
    client._offered = THING
    return client


def _check(client):
    assert type(client["sw1"]) is bool
    assert type(client["level"]) is float
    assert type(client["name"]) is str
    cl = client["cl"]
    assert cl.swi is None or type(cl.swi) is bool
    for f in ("hue", "sat", "bri"):
        assert getattr(cl, f) is None or type(getattr(cl, f)) is float
    for tid in (client.thing_id, client._offered):
        assert tid in (None, "") or protocol.check_thing_id(tid) == tid
    assert client["tz_offset"] is None or type(client["tz_offset"]) is int


_slow = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_slow
@given(topic=st.sampled_from(TOPICS), payload=st.binary(max_size=300))
def test_random_bytes(topic, payload):
    client = _client()
    _deliver(client, topic, payload)
    _check(client)


@_slow
@given(
    topic=st.sampled_from(TOPICS),
    seed=st.sampled_from(SEEDS),
    edits=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), min_size=1, max_size=6),
    cut=st.integers(0, 400),
)
def test_mutated_valid_messages(topic, seed, edits, cut):
    data = bytearray(seed)
    for pos, byte in edits:
        data[pos % len(data)] = byte
    client = _client()
    _deliver(client, topic, bytes(data[: max(1, cut)]))
    _check(client)


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**64) + 1, 2**64 - 1),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.binary(max_size=8),
)


@_slow
@given(
    records=st.lists(
        st.dictionaries(
            st.sampled_from([0, 2, 3, 4, 8, -2, 99, "n"]),
            st.one_of(_values, st.sampled_from(["sw1", "level", "cl:hue", "cl:x", ":", ""])),
            max_size=4,
        ),
        max_size=6,
    ),
    topic=st.sampled_from(TOPICS[:2]),
)
def test_well_formed_cbor_of_any_shape(records, topic):
    client = _client()
    _deliver(client, topic, cbor.dumps(records))
    _check(client)


@pytest.mark.parametrize("topic", TOPICS)
def test_a_valid_write_still_works_after_junk(topic):
    client = _client()
    for junk in (b"\xff", b"\x9f", b"\x81" * 100, SEEDS[0][:-1]):
        _deliver(client, topic, junk)
    _deliver(client, TOPICS[0], senml.encode([{"n": "sw1", "vb": True}]))
    assert client["sw1"] is True
