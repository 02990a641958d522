"""tether.astarte's persistent session on both interpreters, without a network: when the
resync is skipped (session present, introspection as last synced in full), what goes out
instead (the properties changed since, in order, unsets as empty payloads), and the
CleanSession flag chosen before each connect. End to end: tests/test_astarte_client.py
(test_persistent_session_*)."""

import os

from harness import run
from tether.astarte import DeviceMqtt, sync

SERVER = {
    "interface_name": "org.tether.test.Srv",
    "version_major": 1,
    "version_minor": 0,
    "type": "properties",
    "ownership": "server",
    "mappings": [{"endpoint": "/limit", "type": "double"}],
}
PROPS = {
    "interface_name": "org.tether.test.Props",
    "version_major": 0,
    "version_minor": 1,
    "type": "properties",
    "ownership": "device",
    "mappings": [
        {"endpoint": "/name", "type": "string", "allow_unset": True},
        {"endpoint": "/%{slot}/level", "type": "integer", "allow_unset": True},
    ],
}
EXTRA = {
    "interface_name": "org.tether.test.Extra",
    "version_major": 1,
    "version_minor": 0,
    "type": "datastream",
    "ownership": "device",
    "mappings": [{"endpoint": "/x", "type": "double"}],
}
BASE = "test/AJInS0w3VpWpuOqkXhgZdA"


class FakeMqtt:
    """What sync.after_connack uses of the MQTT client: session_present, subscribe,
    publish (recorded as (topic suffix, payload))."""

    def __init__(self, present):
        self.session_present = present
        self._clean = True
        self.subs = []
        self.sent = []
        self.connected = True

    async def subscribe(self, filt, qos):
        self.subs.append(filt[len(BASE) :])
        return qos

    async def publish(self, topic, payload, qos):
        self.sent.append((bytes(topic).decode()[len(BASE) :], bytes(payload), qos))


def _device(persistent=True):
    tmp = "/tmp/tether-dt-astarte-sess-" + "".join("%02x" % b for b in os.urandom(6))
    os.mkdir(tmp)
    d = DeviceMqtt("AJInS0w3VpWpuOqkXhgZdA", "test", "s", "https://127.0.0.1:9/", tmp,
                   persistent_session=persistent)  # fmt: skip
    d.add_interface_from_json(SERVER)
    d.add_interface_from_json(PROPS)
    return d


def _connack(d, present):
    d.mqtt = m = FakeMqtt(present)
    run(sync.after_connack(d))
    return m


def test_persistent_session_client_id_and_clean_flag():
    assert _device(False).client_id == ""  # the SDK's empty client id
    d = _device()
    assert d.client_id == BASE  # a session needs a name (an empty one is refused)
    sync.choose_clean(d)
    assert d.clean_session is True  # a boot: nothing synced yet, clean
    m = _connack(d, False)
    sync.choose_clean(d)
    assert d.clean_session is False and m._clean is False  # synced: a session is worth it
    d.add_interface_from_json(EXTRA)
    sync.choose_clean(d)
    assert d.clean_session is True and m._clean is True  # introspection changed: clean
    d = _device(False)
    _connack(d, False)
    sync.choose_clean(d)
    assert d.clean_session is True  # without persistent_session: always clean


def test_full_resync_then_resumed_sends_only_what_changed():
    d = _device()
    d.send("org.tether.test.Props", "/name", "a")
    d.send("org.tether.test.Props", "/s1/level", 4)
    m = _connack(d, True)  # session present but nothing synced by this object: full
    assert m.subs == ["/control/consumer/properties", "/org.tether.test.Srv/#"]
    topics = [t for t, _p, _q in m.sent]
    assert topics[:2] == ["", "/control/emptyCache"]
    assert sorted(topics[2:4]) == [
        "/org.tether.test.Props/name",
        "/org.tether.test.Props/s1/level",
    ]
    assert topics[4:] == ["/control/producer/properties"]
    assert d.counters["resumed"] == 0 and d._changed == []
    # offline: set, set, unset, set again (order of the last change, values of now)
    d.send("org.tether.test.Props", "/name", "b")
    d.send("org.tether.test.Props", "/s2/level", 9)
    d.unset_property("org.tether.test.Props", "/s1/level")
    d.send("org.tether.test.Props", "/name", "c")
    m = _connack(d, True)
    assert m.subs == [] and d.counters["resumed"] == 1
    assert [(t, p != b"") for t, p, _q in m.sent] == [
        ("/org.tether.test.Props/s2/level", True),
        ("/org.tether.test.Props/s1/level", False),  # the unset: an empty payload
        ("/org.tether.test.Props/name", True),
    ]
    assert all(q == 2 for _t, _p, q in m.sent)
    assert b"c" in m.sent[2][1] and d._changed == []
    # Routes are back although nothing was subscribed: the broker's messages find them.
    assert d.router.lookup((BASE + "/org.tether.test.Srv/limit").encode()) is not None
    assert d.router.lookup((BASE + "/control/consumer/properties").encode()) is not None


def test_no_session_or_a_new_introspection_means_a_full_resync():
    d = _device()
    _connack(d, False)
    m = _connack(d, False)  # the broker lost the session
    assert m.sent[0][0] == "" and d.counters["resumed"] == 0
    d.add_interface_from_json(EXTRA)
    m = _connack(d, True)  # kept, but the server must learn the new introspection
    assert m.sent[0][0] == "" and b"org.tether.test.Extra:1:0" in m.sent[0][1]
    assert d.counters["resumed"] == 0
    m = _connack(d, True)
    assert m.sent == [] and d.counters["resumed"] == 1


def test_a_property_not_acknowledged_at_the_drop_goes_out_on_resuming():
    d = _device()
    _connack(d, False)
    d._online = True
    d.send("org.tether.test.Props", "/name", "late")  # queued, the connection dies
    d._online = False
    sync.spill(d)
    assert d._q == [] and d._changed == ["org.tether.test.Props/name"]
    m = _connack(d, True)
    assert [t for t, _p, _q in m.sent] == ["/org.tether.test.Props/name"]
