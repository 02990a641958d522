"""tether.astarte's client on both interpreters, without a network: interfaces read from
JSON and from the precompiled compact form (the parser dropped again on MicroPython), sends
while offline (unreliable dropped and counted, guaranteed kept, properties stored), the
certificate's dates, when a certificate counts as refused, and the planned renewal."""

import json
import os
import sys

from harness import raises
from tether.astarte import DeviceMqtt
from tether.astarte.errors import InterfaceFileDecodeError, ValidationError
from tether.astarte.iface import compact, from_compact
from tether.astarte.interfaces import Interface
from tether.bson import UTCDateTime
from tether.compat import MICROPYTHON

STREAM = {
    "interface_name": "org.tether.test.Stream",
    "version_major": 1,
    "version_minor": 2,
    "type": "datastream",
    "ownership": "device",
    "mappings": [
        {"endpoint": "/%{id}/fast", "type": "double"},  # unreliable
        {"endpoint": "/%{id}/sure", "type": "integer", "reliability": "guaranteed",
         "explicit_timestamp": True},
        {"endpoint": "/%{id}/tags", "type": "stringarray", "reliability": "unique"},
    ],
}  # fmt: skip
PROPS = {
    "interface_name": "org.tether.test.Props",
    "version_major": 0,
    "version_minor": 1,
    "type": "properties",
    "ownership": "device",
    "mappings": [{"endpoint": "/name", "type": "string", "allow_unset": True}],
}
GEO = {
    "interface_name": "org.tether.test.Geo",
    "version_major": 1,
    "version_minor": 0,
    "type": "datastream",
    "ownership": "device",
    "aggregation": "object",
    "explicit_timestamp": True,
    "mappings": [
        {"endpoint": "/%{place}/lat", "type": "double", "reliability": "unique"},
        {"endpoint": "/%{place}/lon", "type": "double", "reliability": "unique"},
    ],
}

# notBefore 2049-12-31T23:59:59Z (UTCTime), notAfter 2050-01-01T00:00:01Z (GeneralizedTime)
CERT = b"""-----BEGIN CERTIFICATE-----
MIIBFTCBu6ADAgECAgEHMAoGCCqGSM49BAMCMBMxETAPBgNVBAMMCHRlc3QvZGV2
MCAXDTQ5MTIzMTIzNTk1OVoYDzIwNTAwMTAxMDAwMDAxWjATMREwDwYDVQQDDAh0
ZXN0L2RldjBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABO3+o0ZSP7pEpByndSL2
ktT0gfY9MHNfJJYnmbHJulqCaXgnVyN4dkxwELKlBtCE5rFOvvNitX24kFv1dhb5
zjowCgYIKoZIzj0EAwIDSQAwRgIhAMH+tSEQnvevSw6qjV/L4UzmnSbseCzYZQhg
5jcCv3hRAiEApZODYTGST8vWJWqvHtJHsDnVBo1NEq1iQSIzd8ouVq8=
-----END CERTIFICATE-----
"""


def _tmp():
    d = "/tmp/tether-dt-astarte-dev-" + "".join("%02x" % b for b in os.urandom(6))
    os.mkdir(d)
    return d


def _write(path, obj):
    with open(path, "w") as f:
        f.write(json.dumps(obj))


def _same(a, b):
    assert (a.name, a.version_major, a.version_minor, a.type, a.ownership, a.aggregation) == (
        b.name, b.version_major, b.version_minor, b.type, b.ownership, b.aggregation)  # fmt: skip
    assert len(a.mappings) == len(b.mappings)
    for x, y in zip(a.mappings, b.mappings):
        assert _fields(x) == _fields(y)


def _fields(m):
    return (m.endpoint, m.type, m.base, m.array, m.qos, m.explicit_timestamp, m.allow_unset,
            m.levels)  # fmt: skip


def test_compact_form_round_trips():
    for d in (STREAM, PROPS, GEO):
        i = Interface(d)
        c = json.loads(json.dumps(compact(i)))  # as the host tool writes it
        _same(from_compact(c), i)
    s = from_compact(compact(Interface(STREAM)))
    assert s.qos("/a/fast") == 0 and s.qos("/a/sure") == 1 and s.qos("/a/tags") == 2
    assert s.mapping("/a+/fast") is None and s.mapping("/a/b/fast") is None
    raises(ValidationError, s.check_individual, "/a/sure", 1.5, UTCDateTime(0))
    raises(ValidationError, s.check_individual, "/a/sure", 1)  # timestamp required
    raises(InterfaceFileDecodeError, from_compact, ["org.x.Y", 1])


def _device(tmp):
    ifaces = tmp + "/ifaces"
    os.mkdir(ifaces)
    _write(ifaces + "/stream.json", STREAM)
    _write(ifaces + "/props.json", PROPS)
    _write(ifaces + "/org.tether.test.Geo.ifc", compact(Interface(GEO)))
    with open(ifaces + "/README.txt", "w") as f:
        f.write("not an interface")
    os.mkdir(tmp + "/persist")
    d = DeviceMqtt("AJInS0w3VpWpuOqkXhgZdA", "test", "secret", "https://127.0.0.1:9/",
                   tmp + "/persist", ca=CERT)  # fmt: skip
    d.add_interfaces_from_dir(ifaces)
    return d, None


def test_interfaces_from_json_and_compact_files_parser_dropped():
    sys.modules.pop("tether.astarte.interfaces", None)  # as on a board before the first read
    d, _ = _device(_tmp())
    assert sorted(d.interfaces) == [
        "org.tether.test.Geo",
        "org.tether.test.Props",
        "org.tether.test.Stream",
    ]
    _same(d.interfaces["org.tether.test.Geo"], Interface(GEO))
    _same(d.interfaces["org.tether.test.Stream"], Interface(STREAM))
    # MicroPython: the parser is gone again once the interfaces are read (CPython keeps it)
    assert ("tether.astarte.interfaces" in sys.modules) is not MICROPYTHON


def test_offline_sends():
    tmp = _tmp()
    d, _ = _device(tmp)
    ts = UTCDateTime(1700000000000)
    d.send("org.tether.test.Stream", "/a/fast", 1.5)
    d.send("org.tether.test.Stream", "/a/fast", 2.5)
    assert d.counters["dropped_unreliable"] == 2  # unreliable while offline: dropped, counted
    d.send("org.tether.test.Stream", "/a/sure", 7, ts)
    d.send("org.tether.test.Stream", "/a/tags", ["x", "y"])
    d.send_aggregate("org.tether.test.Geo", "/home", {"lat": 1.0, "lon": 2.0}, ts)
    assert [(e[0].split(b"/", 2)[2], e[2]) for e in d._q] == [
        (b"org.tether.test.Stream/a/sure", 1),
        (b"org.tether.test.Stream/a/tags", 2),
        (b"org.tether.test.Geo/home", 2),
    ]  # guaranteed and unique wait (in RAM without a store), with their QoS
    d.send("org.tether.test.Props", "/name", "board")
    assert len(d._q) == 3  # a property goes out with the next resync, from flash
    assert d.get_property("org.tether.test.Props", "/name") == "board"
    d.unset_property("org.tether.test.Props", "/name")
    assert d.get_property("org.tether.test.Props", "/name") is None
    raises(ValidationError, d.send, "org.tether.test.Stream", "/a/sure", 1.5, ts)
    raises(ValidationError, d.send, "org.tether.test.Geo", "/home", 1.0, ts)
    assert d.is_connected() is False and d.get_device_id() == "AJInS0w3VpWpuOqkXhgZdA"


def test_certificate_dates():
    from tether.astarte.pairing import cert_validity

    assert cert_validity(CERT) == (2524607999, 2524608001)


class _Session:
    def __init__(self, stage, exc):
        self.last_failed_stage = stage
        self.last_error = exc


def test_what_counts_as_a_refused_certificate():
    from tether.astarte.certificate import _refused
    from tether.mqtt import MQTTConnectError, MQTTError

    assert _refused(_Session("mqtt", MQTTConnectError(5)))  # not authorized
    assert _refused(_Session("mqtt", MQTTConnectError(4)))  # bad credentials
    assert not _refused(_Session("mqtt", MQTTConnectError(3)))  # server unavailable
    assert _refused(_Session("mqtt", MQTTError("connection lost waiting for CONNACK")))
    assert _refused(_Session("tls", OSError(-0x7780, "MBEDTLS_ERR_SSL_FATAL_ALERT")))
    assert not _refused(_Session("tcp", OSError(111, "refused")))
    assert not _refused(_Session("pairing", OSError(111, "refused")))
    assert not _refused(_Session(None, None))


def test_planned_renewal_before_the_certificate_runs_out():
    from tether.compat import ticks_ms

    d, _ = _device(_tmp())
    c = d.credentials
    assert c.mint(1000) == (None, None) and c.expires_at is None  # nothing known yet
    d._cert_left = (600, ticks_ms())
    assert c.mint(1000) == (None, None)
    assert 1000 + 598 <= c.expires_at <= 1000 + 600  # the base renews at 4/5 of it
    d._cert_left = (2, ticks_ms())  # about to run out: no reconnect storm
    c.mint(1000)
    assert c.expires_at is None


def test_sdk_exception_names():
    import tether.astarte as a

    names = ("APIError AuthorizationError DeviceAlreadyRegisteredError DeviceConnectingError "
             "DeviceDisconnectedError InterfaceFileDecodeError InterfaceFileNotFoundError "
             "InterfaceNotFoundError JWTGenerationError PersistencyDirectoryNotFoundError "
             "ValidationError").split()  # fmt: skip
    for n in names:
        assert issubclass(getattr(a, n), a.AstarteError), n
    assert a.ValidationError("x").msg == "x" and a.APIError("y").body == "y"
    raises(AttributeError, getattr, a, "NoSuchName")


class _Loop:
    def __init__(self):
        self.calls = []

    def call_soon_threadsafe(self, fn, *args):
        self.calls.append((fn, args))


def test_callbacks_through_a_loop_and_remove_interface():
    d, _ = _device(_tmp())
    got = []
    loop = _Loop()
    d.set_events_callbacks(lambda dev: got.append(dev), loop=loop)
    d._callback(d._on_connected)
    assert got == [] and loop.calls[0][1] == (d,)  # handed to the loop, as the SDK does
    d.set_events_callbacks(lambda dev: got.append(dev))
    d._callback(d._on_connected)
    assert got == [d]
    d.send("org.tether.test.Props", "/name", "board")
    d.remove_interface("org.tether.test.Props")
    assert "org.tether.test.Props" not in d.interfaces
    assert d.properties.load_all_props() == []  # its properties went with it
    from tether.astarte.errors import InterfaceNotFoundError

    raises(InterfaceNotFoundError, d.send, "org.tether.test.Props", "/name", "x")


def test_firmware_profile_settings():
    from tether.astarte import profile

    tmp = _tmp()
    os.mkdir(tmp + "/interfaces")
    _write(tmp + "/interfaces/props.json", PROPS)
    with open(tmp + "/ca.pem", "wb") as f:
        f.write(CERT)
    settings = {
        "cloud": "astarte",
        "device_id": "AJInS0w3VpWpuOqkXhgZdA",
        "astarte": {"realm": "test", "pairing_url": "https://127.0.0.1:9/", "ca": "ca.pem"},
        "_secrets": {"astarte_credentials_secret": "s"},
        "_dir": tmp,
    }
    c = profile.make_client(settings)
    assert c._se_key is None and c._ca == CERT and list(c.interfaces) == ["org.tether.test.Props"]
    settings["astarte"]["key"] = "se05x:token=0x00000064"
    settings["astarte"]["key_cert"] = "se05x:token=0x00000065"
    c = profile.make_client(settings)
    assert c._se_key == ("se05x:token=0x00000064", "se05x:token=0x00000065", None)
    del settings["_secrets"]
    raises(ValueError, profile.make_client, settings)  # not registered: says so
