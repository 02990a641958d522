"""tether.astarte on both interpreters: interface parsing and its errors (each names the
field), the SDK's type rules per mapping, the wire encoding (protocols.md §5.5 vectors),
purge lists (both header orders, a zlib bomb), and the property file across "reboots"."""

import os

from harness import raises
from tether.astarte import codec
from tether.astarte.errors import InterfaceFileDecodeError, ValidationError
from tether.astarte.interfaces import Interface, valid_name
from tether.astarte.properties import PropertyFile
from tether.bson import UTCDateTime, dumps, loads


def sensors(**over):
    d = {
        "interface_name": "org.tether.test.Sensors",
        "version_major": 1,
        "version_minor": 0,
        "type": "datastream",
        "ownership": "device",
        "mappings": [
            {
                "endpoint": "/%{sensor_id}/temperature",
                "type": "double",
                "reliability": "guaranteed",
                "explicit_timestamp": True,
            },
            {"endpoint": "/%{sensor_id}/count", "type": "integer"},
            {"endpoint": "/%{sensor_id}/uptime", "type": "longinteger", "reliability": "unique"},
            {"endpoint": "/tags", "type": "stringarray"},
            {"endpoint": "/blob", "type": "binaryblob"},
            {"endpoint": "/when", "type": "datetime"},
            {"endpoint": "/flag", "type": "boolean"},
        ],
    }
    d.update(over)
    return d


def props(**over):
    d = {
        "interface_name": "org.tether.test.ServerSettings",
        "version_major": 1,
        "version_minor": 0,
        "type": "properties",
        "ownership": "server",
        "mappings": [
            {"endpoint": "/threshold", "type": "double", "allow_unset": True},
            {"endpoint": "/%{slot}/enabled", "type": "boolean"},
        ],
    }
    d.update(over)
    return d


def geo():
    return Interface(
        {
            "interface_name": "org.tether.test.Geolocation",
            "version_major": 1,
            "version_minor": 1,
            "type": "datastream",
            "ownership": "device",
            "aggregation": "object",
            "mappings": [
                {"endpoint": "/%{place}/latitude", "type": "double", "reliability": "unique"},
                {"endpoint": "/%{place}/longitude", "type": "double", "reliability": "unique"},
                {"endpoint": "/%{place}/label", "type": "string", "reliability": "unique"},
            ],
        }
    )


def bad(d, *words):
    """Parsing d fails, and the message names every word given (the field, the value)."""
    exc = raises(InterfaceFileDecodeError, Interface, d)
    for w in words:
        assert w in str(exc), (w, str(exc))
    return exc


def mapping_with(**m):
    base = {"endpoint": "/x", "type": "double"}
    base.update(m)
    return sensors(mappings=[base])


# ------------------------------------------------------------ parsing


def test_parses_and_looks_up():
    i = Interface(sensors())
    assert (i.name, i.version_major, i.version_minor) == ("org.tether.test.Sensors", 1, 0)
    assert i.mapping("/s1/temperature").type == "double"
    assert i.mapping("/42/count").endpoint == "/%{sensor_id}/count"  # any level for a param
    assert i.mapping("/s1/nope") is None and i.mapping("/s1") is None
    assert i.mapping("/s+/count") is None and i.mapping("/#/count") is None
    assert i.qos("/s1/temperature") == 1 and i.qos("/s1/count") == 0 and i.qos("/s/uptime") == 2
    assert Interface(props()).qos("/threshold") == 2
    assert geo().qos() == 2 and geo().is_aggregation_object()


def test_names():
    for ok in ("a", "org.example.Sensors", "com.my-corp.Thing2", "x.0a.Y"):
        assert valid_name(ok), ok
    for no in ("", "1abc", "org..x", "org.example.", ".org", "org.x-y", "a" * 128, 5):
        assert not valid_name(no), no


def test_errors_name_the_field():
    bad(sensors(interface_name="bad name"), "interface_name", "bad name")
    bad(sensors(version_major="1"), "version_major")
    bad(sensors(version_major=True), "version_major")  # a bool is not an int
    bad(sensors(version_major=0, version_minor=0), "both 0")
    bad(sensors(type="stream"), "type", "stream")
    bad(sensors(ownership="cloud"), "ownership", "cloud")
    bad(sensors(aggregation="obj"), "aggregation", "obj")
    bad(props(aggregation="object"), "aggregation")
    bad(sensors(mappings=[]), "mappings")
    bad(sensors(mapings=[]), "unknown key", "mapings")
    bad(mapping_with(type="doubel"), "mappings[0]", "doubel")
    bad(mapping_with(endpoint="x"), "mappings[0]", "endpoint")
    bad(mapping_with(endpoint="/a//b"), "endpoint level")
    bad(mapping_with(endpoint="/%{1x}/b"), "%{1x}")
    bad(mapping_with(endpoint="/a" * 65), "64 levels")
    bad(mapping_with(reliability="always"), "reliability", "always")
    bad(mapping_with(explicit_timestamp="yes"), "explicit_timestamp")
    bad(mapping_with(allow_unset=True), "allow_unset", "properties only")
    bad(mapping_with(allow_unest=True), "unknown key", "allow_unest")
    m = props()["mappings"]
    bad(props(mappings=[dict(m[0], reliability="unique")]), "reliability", "datastreams only")
    bad(props(mappings=[dict(m[0], allow_unset=1)]), "allow_unset")
    two = [{"endpoint": "/%{a}/x", "type": "double"}, {"endpoint": "/b/x", "type": "integer"}]
    bad(sensors(mappings=two), "mappings[1]", "overlaps")
    mixed = [
        {"endpoint": "/%{p}/a", "type": "double", "reliability": "unique"},
        {"endpoint": "/%{p}/b", "type": "double"},
    ]
    bad(sensors(aggregation="object", mappings=mixed), "mappings[1]", "reliability")
    bad(sensors(aggregation="object", mappings=[{"endpoint": "/a", "type": "double"}]), "depth")
    bad("not a dict", "object")


# ------------------------------------------------------------ values


def test_types_follow_the_sdk():
    i = Interface(sensors())
    t = UTCDateTime(1700000000123)
    i.check_individual("/s1/temperature", 21.5, t)
    e = raises(ValidationError, i.check_individual, "/s1/temperature", 21, t)
    assert "double" in str(e) and "int" in str(e)  # an int is not a double
    raises(ValidationError, i.check_individual, "/s1/temperature", float("nan"), t)
    raises(ValidationError, i.check_individual, "/s1/temperature", float("inf"), t)
    raises(ValidationError, i.check_individual, "/s1/temperature", 1.0)  # no timestamp
    raises(ValidationError, i.check_individual, "/s1/count", 1, t)  # a timestamp not allowed
    i.check_individual("/s1/count", 2**31 - 1)
    raises(ValidationError, i.check_individual, "/s1/count", 2**31)  # int32 range
    raises(ValidationError, i.check_individual, "/s1/count", True)  # a bool is not an int
    raises(ValidationError, i.check_individual, "/s1/count", 1.0)
    i.check_individual("/s1/uptime", 2**40)
    raises(ValidationError, i.check_individual, "/s1/uptime", 2**63)
    i.check_individual("/tags", ["a", "b"])
    raises(ValidationError, i.check_individual, "/tags", ["a", 1])
    raises(ValidationError, i.check_individual, "/tags", "a")
    raises(ValidationError, i.check_individual, "/tags", ["a"] * 1025)
    i.check_individual("/blob", b"\x00\x01")
    raises(ValidationError, i.check_individual, "/blob", "text")
    i.check_individual("/when", t)
    raises(ValidationError, i.check_individual, "/when", 1700000000)
    raises(ValidationError, i.check_individual, "/flag", 1)
    raises(ValidationError, i.check_individual, "/nope", 1)


def test_objects():
    g = geo()
    g.check_object("/home", {"latitude": 1.5, "longitude": 2.5, "label": "x"})
    e = raises(ValidationError, g.check_object, "/home", {"latitude": 1.5, "longitude": 2.5})
    assert "label" in str(e)  # a device-owned object is complete
    g.check_object("/home", {"latitude": 1.5}, complete=False)  # a server's need not be
    raises(ValidationError, g.check_object, "/home", {"latitude": 1, "longitude": 2.5})
    raises(ValidationError, g.check_object, "/home", {"altitude": 1.5})
    raises(ValidationError, g.check_object, "/home", [1.5])


# ------------------------------------------------------------ wire


def test_encoding_vectors():
    i = Interface(sensors())
    m = i.mapping("/s1/temperature")
    raw = codec.encode(i.mapping("/s1/count"), 10)
    assert raw == bytes.fromhex("0c0000001076000a00000000")  # protocols.md §5.5
    raw = codec.encode(m, 16.73, UTCDateTime(1537449422890))
    assert loads(raw) == {"v": 16.73, "t": UTCDateTime(1537449422890)}
    raw = codec.encode(i.mapping("/s1/uptime"), 5)
    assert raw[4] == 0x12  # longinteger is int64 on the wire, even when small
    g = geo()
    raw = codec.encode_object(g, "/home", {"latitude": 1.5, "longitude": 2.5, "label": "x"})
    assert loads(raw) == {"v": {"latitude": 1.5, "longitude": 2.5, "label": "x"}}


def test_decoding_server_messages():
    p = Interface(props())
    assert codec.decode(p, "/threshold", dumps({"v": 12.5})) == 12.5
    assert codec.decode(p, "/threshold", b"") is None  # unset, allowed
    raises(ValidationError, codec.decode, p, "/s1/enabled", b"")  # allow_unset false
    raises(ValidationError, codec.decode, p, "/threshold", dumps({"v": 3}))  # int for double
    raises(ValidationError, codec.decode, p, "/threshold", dumps({"x": 1.0}))
    raises(ValueError, codec.decode, p, "/threshold", b"\x05\x00\x00")  # bad BSON
    raises(ValidationError, codec.decode, p, "/nope", dumps({"v": 1.0}))


def test_purge_lists():
    out = codec.purge_payload(["a.B/x", "a.B/y/z"])
    assert out[:4] == b"\x00\x00\x00\x0d"  # big-endian size of the text
    assert codec.purge_entries(out) == {"a.B/x", "a.B/y/z"}
    little = b"\x0d\x00\x00\x00" + out[4:]  # the SDK's little-endian header: still read
    assert codec.purge_entries(little) == {"a.B/x", "a.B/y/z"}
    assert codec.purge_payload([])[:4] == b"\x00\x00\x00\x00"
    assert codec.purge_entries(codec.purge_payload([])) == set()
    from tether.zlib import store

    bomb = b"\x00\x00\x00\x01" + store(b"a" * (codec.PURGE_MAX + 1))
    raises(ValueError, codec.purge_entries, bomb)
    raises(ValidationError, codec.purge_entries, b"\x00\x00")
    raises(ValueError, codec.purge_entries, b"\x00\x00\x00\x00garbage")


def test_introspection():
    assert codec.introspection([Interface(sensors()), geo()]) == (
        "org.tether.test.Sensors:1:0;org.tether.test.Geolocation:1:1"
    )


# ------------------------------------------------------------ properties in flash


def _tmp():
    d = "/tmp/tether-dt-astarte-" + "".join("%02x" % b for b in os.urandom(6))
    os.mkdir(d)
    return d


def test_property_file_survives_a_reboot():
    path = _tmp() + "/props.bson"
    db = PropertyFile(path)
    db.store_prop("a.B", 1, "/name", "board-1")
    db.store_prop("a.B", 1, "/zero", 0)  # falsy values are kept (the SDK drops them)
    db.store_prop("a.C", 2, "/blob", b"\x00\xff")
    db.store_prop("a.C", 2, "/gone", 1.5)
    db.store_prop("a.C", 2, "/gone", None)
    again = PropertyFile(path)  # a reboot
    rows = sorted(again.load_all_props())
    assert rows == [("a.B", 1, "/name", "board-1"), ("a.B", 1, "/zero", 0),
                    ("a.C", 2, "/blob", b"\x00\xff")]  # fmt: skip
    assert again.load_prop("a.B", 2, "/name") is None  # a new major drops the old value
    assert PropertyFile(path).load_prop("a.B", 1, "/name") is None
    with again.batch():
        again.delete_props_from_interface("a.C")
        again.store_prop("a.D", 1, "/x", True)
        n = again.writes
    assert again.writes == n + 1  # one write for the batch


def test_property_file_power_cuts():
    d = _tmp()
    path = d + "/props.bson"
    db = PropertyFile(path)
    db.store_prop("a.B", 1, "/name", "v1")
    with open(path + ".tmp", "wb") as f:  # a cut while writing the next table
        f.write(b"\x30\x00\x00")
    assert PropertyFile(path).load_prop("a.B", 1, "/name") == "v1"
    os.rename(path, path + ".tmp")  # FAT: the old file removed, the new one not renamed yet
    assert PropertyFile(path).load_prop("a.B", 1, "/name") == "v1"
    with open(path, "wb") as f:  # a corrupt file: empty, not an exception
        f.write(b"garbage")
    assert PropertyFile(path).load_all_props() == []


def test_device_ids():
    from tether.astarte.pairing import generate_device_id, generate_random_device_id

    ns = "f79ad91f-c638-4889-ae74-9d001a3b4cf8"  # protocols.md §5.1 vectors
    assert generate_device_id(ns, "myidentifierdata") == "AJInS0w3VpWpuOqkXhgZdA"
    assert generate_device_id(ns, "AA:BB:CC:DD:EE:FF") == "Vv74Pmn_UYKwW_3eHLOSNw"
    a, b = generate_random_device_id(), generate_random_device_id()
    assert len(a) == 22 and a != b
    # the URL-safe alphabet, without padding (binascii's "+/" and "=" must not show)
    from tether.astarte.pairing import _b64id

    assert _b64id(b"\xfb\xff\xbf" + bytes(13)) == "-_-_AAAAAAAAAAAAAAAAAA"


def test_broker_urls():
    from tether.astarte.errors import APIError
    from tether.astarte.pairing import parse_broker_url

    assert parse_broker_url("mqtts://broker.example.com:8883/") == ("broker.example.com", 8883)
    assert parse_broker_url("ssl://10.0.0.1:1883") == ("10.0.0.1", 1883)
    assert parse_broker_url("mqtts://broker.example.com") == ("broker.example.com", 8883)
    assert parse_broker_url("mqtts://[::1]:8883/") == ("::1", 8883)
    raises(APIError, parse_broker_url, "mqtts://:8883/")
    raises(APIError, parse_broker_url, "mqtts://host:port/")
