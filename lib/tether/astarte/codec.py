"""Astarte MQTT v1 payloads (protocols.md §5.4-5.5): BSON values, purge lists, introspection.

    encode(mapping, 21.5, ts)           # BSON {"v": 21.5, "t": ts}; longinteger as int64
    encode_object(iface, "/home", {...}) # {"v": {"latitude": ...}}
    decode(iface, "/s1/x", payload)     # the checked value of a server message (None: unset)
    purge_payload(["iface/path", ...])  # 4-byte big-endian size + zlib text
    purge_entries(payload)              # the set of "iface/path" a purge list keeps

Incoming messages are checked as strictly as outgoing ones: the BSON decoder is bounded,
the value must have the mapping's type (an integer 3 for a double mapping is refused, as
the SDK does), and a purge list inflates to at most PURGE_MAX bytes (a zlib bomb stops
there). Everything refused raises ValidationError (or the decoders' BSONError / ZlibError,
ValueErrors): the cloud base counts it in `bad_messages` and the connection stays.
"""

from tether.astarte.errors import ValidationError
from tether.compat import MICROPYTHON, build_once, const

PURGE_MAX = const(8192)  # inflated purge list (a few hundred properties' names)


def _wbits(payload):
    # MicroPython: a window as large as the text (the size header, in either byte order),
    # not the 32 KiB the zlib header declares: no back-reference reaches further than the
    # text is long, and a free 32 KiB block is rare on a fragmented heap (512 bytes for a
    # few properties). A header that lies only makes the inflate fail. CPython refuses a
    # window smaller than the header's: 0 there.
    if not MICROPYTHON:
        return 0
    n = int.from_bytes(payload[:4], "big")
    if n > PURGE_MAX:
        n = int.from_bytes(payload[:4], "little")
    w = 9
    while (1 << w) < n and w < 13:
        w += 1
    return w


def _wire(base, v):
    # A value as bson.dumps must write it: longinteger always int64 (the spec's type;
    # the SDK lets small ones go out as int32).
    if base == "longinteger":
        from tether.bson import Int64

        return Int64(v)
    return v


def wire_value(mapping, v):
    if mapping.array:
        return [_wire(mapping.base, x) for x in v]
    return _wire(mapping.base, v)


def encode(mapping, value, ts=None):
    from tether import bson

    doc = {"v": wire_value(mapping, value)}
    if ts is not None:
        doc["t"] = ts
    return bson.dumps(doc)


def encode_object(iface, path, value, ts=None):
    from tether import bson

    prefix = "" if path == "/" else path
    out = {}
    for k, v in value.items():
        out[k] = wire_value(iface.mapping(prefix + "/" + k), v)
    doc = {"v": out}
    if ts is not None:
        doc["t"] = ts
    return bson.dumps(doc)


def _local(mapping, v):
    # BSON datetimes arrive as UTCDateTime; on CPython the app gets datetime, as from the SDK.
    if MICROPYTHON or mapping.base != "datetime":
        return v
    if mapping.array:
        return [x.to_datetime() if hasattr(x, "to_datetime") else x for x in v]
    return v.to_datetime() if hasattr(v, "to_datetime") else v


def decode(iface, path, payload):
    """The value of a server message on iface+path, checked; None for an unset."""
    if not payload:
        m = iface.mapping(path)
        if iface.type != "properties" or m is None or not m.allow_unset:
            raise ValidationError("empty payload on %s%s: not an unsettable property" % (
                iface.name, path))  # fmt: skip
        return None
    from tether import bson

    doc = bson.loads(payload, max_depth=4, max_items=1100)
    if not isinstance(doc, dict) or "v" not in doc:
        raise ValidationError("%s%s: BSON without v" % (iface.name, path))
    v = doc["v"]
    if iface.aggregation == "object":
        if not isinstance(v, dict):
            raise ValidationError("%s is an object aggregate: v must be a document" % iface.name)
        prefix = "" if path == "/" else path
        for k in list(v):
            m = iface.mapping(prefix + "/" + k)
            if m is not None:
                v[k] = _local(m, v[k])
        iface.check_object(path, v, None, complete=False)
        return v
    m = iface.mapping(path)
    if m is None:
        raise ValidationError("path %s is not in %s" % (path, iface.name))
    v = _local(m, v)
    m.check(v)
    return v


def introspection(interfaces):
    return ";".join("%s:%d:%d" % (i.name, i.version_major, i.version_minor) for i in interfaces)


def _compress(text):
    from tether import zlib

    return zlib.compress(text)


def purge_payload(entries):
    """The producer/properties payload: big-endian size of the text, then the zlib text."""
    text = ";".join(entries).encode()
    n = len(text)
    # tether.zlib only while compressing (on a board it goes again: once per connection)
    z = build_once(_compress, text)
    return bytes((n >> 24, (n >> 16) & 255, (n >> 8) & 255, n & 255)) + z


def _inflate(payload):
    from tether import zlib

    return zlib.decompress(memoryview(payload)[4:], max_size=PURGE_MAX, wbits=_wbits(payload))


def purge_entries(payload):
    """The "iface/path" entries a consumer/properties payload keeps. The size header is
    ignored (the SDK writes it little-endian, the spec big-endian); the inflated text is
    bounded by PURGE_MAX."""
    if len(payload) < 5:
        raise ValidationError("purge list of %d bytes" % len(payload))
    text = build_once(_inflate, payload)
    try:
        text = text.decode()
    except UnicodeError:
        raise ValidationError("purge list is not UTF-8")
    return set(text.split(";")) if text else set()
