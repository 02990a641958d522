"""BSON 1.1 (bsonspec.org) encoder and strict, bounded decoder, for Astarte payloads.

    >>> dumps({"v": 10}).hex()
    '0c0000001076000a00000000'
    >>> loads(bytes.fromhex("090000000876000100"))
    {'v': True}

Types, both ways: 0x01 double <-> float, 0x02 string <-> str, 0x03 document <-> dict,
0x04 array <-> list (tuples encode too), 0x05 binary <-> bytes (subtype 0; other subtypes
<-> Binary), 0x08 bool, 0x09 UTC datetime <-> UTCDateTime, 0x0A null <-> None,
0x10 int32 / 0x12 int64 <-> int. dumps writes int32 when the value fits and int64 when it
does not; Int64(n) forces int64 (Astarte's longinteger). On CPython dumps also takes a
`datetime.datetime` (naive means UTC, as pymongo does). Any other type is a BSONError.

MicroPython has no datetime, so a UTC datetime is UTCDateTime(ms): integer milliseconds
since 1970-01-01T00:00:00Z, the BSON value itself; `.to_datetime()` / `from_datetime()`
convert on CPython. MicroPython dicts do not keep insertion order: pass a
collections.OrderedDict (both interpreters have it) where the byte order of keys matters.

The decoder is built for input from the network, like tether.cbor: every length (document,
string, binary) is checked against the bytes left in its enclosing document before anything
is allocated, nesting depth and element count are capped, keys must be NUL-terminated
UTF-8 and unique, and every malformed input raises BSONError (a ValueError), nothing else.
An empty payload (Astarte's "unset") is not a document: check for it before loads().
"""

import struct

from tether.compat import const

_DOUBLE = const(0x01)
_STRING = const(0x02)
_DOCUMENT = const(0x03)
_ARRAY = const(0x04)
_BINARY = const(0x05)
_BOOL = const(0x08)
_DATETIME = const(0x09)
_NULL = const(0x0A)
_INT32 = const(0x10)
_INT64 = const(0x12)

_OLD_BINARY = const(0x02)  # binary subtype 2 repeats the length inside the data
_MIN_DOC = const(5)  # int32 length + the terminating NUL
_MAX_ENCODE_DEPTH = const(32)
_INT32_MIN = const(-0x80000000)
_INT32_MAX = const(0x7FFFFFFF)
_INT64_MIN = -0x8000000000000000  # not const(): beyond a small int on 32-bit ports
_INT64_MAX = 0x7FFFFFFFFFFFFFFF


class BSONError(ValueError):
    """Malformed, oversized or unencodable BSON."""


class UTCDateTime:
    """A BSON UTC datetime: `ms`, integer milliseconds since the Unix epoch (may be < 0)."""

    def __init__(self, ms):
        if not isinstance(ms, int) or ms is True or ms is False:
            raise BSONError("UTCDateTime takes integer milliseconds, not %r" % (ms,))
        if not _INT64_MIN <= ms <= _INT64_MAX:
            raise BSONError("UTCDateTime out of the int64 range")
        self.ms = ms

    @classmethod
    def from_seconds(cls, unix_s):
        """From Unix seconds (int or float), e.g. tether.hal.clock.unix_time()."""
        return cls(int(unix_s * 1000) if isinstance(unix_s, float) else unix_s * 1000)

    @classmethod
    def from_datetime(cls, dt):
        """From a datetime.datetime; naive means UTC. Rounds down to the millisecond."""
        dt_mod = __import__("datetime")
        off = dt.utcoffset()
        naive = dt.replace(tzinfo=None)
        if off is not None:
            naive = naive - off
        delta = naive - dt_mod.datetime(1970, 1, 1)
        return cls(delta.days * 86400000 + delta.seconds * 1000 + delta.microseconds // 1000)

    def to_datetime(self):
        """An aware datetime.datetime in UTC (CPython, or micropython-lib's datetime)."""
        dt_mod = __import__("datetime")
        epoch = dt_mod.datetime(1970, 1, 1, tzinfo=dt_mod.timezone.utc)
        return epoch + dt_mod.timedelta(milliseconds=self.ms)

    def __eq__(self, other):
        return isinstance(other, UTCDateTime) and self.ms == other.ms

    def __hash__(self):
        return hash(self.ms) ^ 0x0909

    def __repr__(self):
        return "UTCDateTime(%d)" % self.ms


class Int64:
    """An integer dumps() writes as int64 (0x12) even when it fits an int32."""

    def __init__(self, value):
        if not isinstance(value, int) or value is True or value is False:
            raise BSONError("Int64 takes an int, not %r" % (value,))
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise BSONError("integer out of the int64 range: %d" % value)
        self.value = value

    def __eq__(self, other):
        return isinstance(other, Int64) and self.value == other.value

    def __hash__(self):
        return hash(self.value)

    def __repr__(self):
        return "Int64(%d)" % self.value


class Binary:
    """Binary data with a subtype other than 0 (subtype 0 is plain bytes)."""

    def __init__(self, data, subtype):
        if not isinstance(subtype, int) or not 0 <= subtype <= 255:
            raise BSONError("binary subtype must be 0..255: %r" % (subtype,))
        self.data = bytes(data)
        self.subtype = subtype

    def __eq__(self, other):
        return (
            isinstance(other, Binary) and self.subtype == other.subtype and self.data == other.data
        )

    def __hash__(self):
        return hash(self.data) ^ self.subtype

    def __repr__(self):
        return "Binary(%r, %d)" % (self.data, self.subtype)


# ---------------------------------------------------------------------------- encoder


def _cstring(out, key):
    if not isinstance(key, str):
        raise BSONError("document keys must be str, not %s" % type(key).__name__)
    data = key.encode("utf-8")
    if b"\x00" in data:
        raise BSONError("document key contains NUL: %r" % key)
    out.extend(data)
    out.append(0)


def _document(out, obj, depth, array):
    if depth >= _MAX_ENCODE_DEPTH:
        raise BSONError("nesting deeper than %d" % _MAX_ENCODE_DEPTH)
    start = len(out)
    out.extend(b"\x00\x00\x00\x00")  # length, patched once the elements are written
    if array:
        for i in range(len(obj)):
            _element(out, str(i), obj[i], depth + 1)
    else:
        for k in obj:
            _element(out, k, obj[k], depth + 1)
    out.append(0)
    struct.pack_into("<i", out, start, len(out) - start)


def _element(out, key, obj, depth):
    # The type byte is written first and patched by the branches: one append per element.
    at = len(out)
    out.append(0)
    _cstring(out, key)
    # `is` tests first: on CPython bool is an int, on MicroPython it is not.
    if obj is None:
        t = _NULL
    elif obj is False or obj is True:
        t = _BOOL
        out.append(1 if obj else 0)
    elif isinstance(obj, int):
        if _INT32_MIN <= obj <= _INT32_MAX:
            t = _INT32
            out.extend(struct.pack("<i", obj))
        elif _INT64_MIN <= obj <= _INT64_MAX:
            t = _INT64
            out.extend(struct.pack("<q", obj))
        else:
            raise BSONError("integer out of the int64 range: %d" % obj)
    elif isinstance(obj, float):
        t = _DOUBLE
        out.extend(struct.pack("<d", obj))
    elif isinstance(obj, str):
        t = _STRING
        data = obj.encode("utf-8")
        out.extend(struct.pack("<i", len(data) + 1))
        out.extend(data)
        out.append(0)
    elif isinstance(obj, dict):
        t = _DOCUMENT
        _document(out, obj, depth, False)
    elif isinstance(obj, (list, tuple)):
        t = _ARRAY
        _document(out, obj, depth, True)
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        t = _BINARY
        data = bytes(obj)  # also flattens CPython multi-byte memoryviews
        out.extend(struct.pack("<iB", len(data), 0))
        out.extend(data)
    elif isinstance(obj, UTCDateTime):
        t = _DATETIME
        out.extend(struct.pack("<q", obj.ms))
    elif isinstance(obj, Int64):
        t = _INT64
        out.extend(struct.pack("<q", obj.value))
    elif isinstance(obj, Binary):
        t = _BINARY
        data = obj.data
        if obj.subtype == _OLD_BINARY:
            out.extend(struct.pack("<iBi", len(data) + 4, _OLD_BINARY, len(data)))
        else:
            out.extend(struct.pack("<iB", len(data), obj.subtype))
        out.extend(data)
    elif hasattr(obj, "utcoffset") and hasattr(obj, "microsecond"):  # a datetime.datetime
        t = _DATETIME
        out.extend(struct.pack("<q", UTCDateTime.from_datetime(obj).ms))
    else:
        raise BSONError("cannot encode %s as BSON" % type(obj).__name__)
    out[at] = t


def dumps(doc):
    """Encode the dict `doc` as one BSON document (bytes)."""
    if not isinstance(doc, dict):
        raise BSONError("a BSON document is a dict, not %s" % type(doc).__name__)
    out = bytearray()
    _document(out, doc, 0, False)
    return bytes(out)


# ---------------------------------------------------------------------------- decoder


class _Decoder:
    # One per loads(): the buffer, the element budget and the depth limit.

    def __init__(self, buf, max_depth, max_items):
        self.buf = buf
        self.max_depth = max_depth
        self.items = max_items

    def int32(self, p, end):
        if p + 4 > end:
            raise BSONError("truncated: int32 at %d runs past %d" % (p, end))
        return struct.unpack_from("<i", self.buf, p)[0]

    def key_end(self, p, end):
        # The key's NUL must lie inside the enclosing document (before its own NUL).
        z = self.buf.find(b"\x00", p, end)
        if z < 0:
            raise BSONError("unterminated key at %d" % p)
        return z

    def document(self, p, limit, depth, array):
        """Decode the document starting at p, which must end at or before limit.

        Returns (value, end offset). Lengths are checked before any slice is taken.
        """
        if depth >= self.max_depth:
            raise BSONError("nesting deeper than %d" % self.max_depth)
        n = self.int32(p, limit)
        if n < _MIN_DOC or n > limit - p:
            raise BSONError(
                "document length %d at %d does not fit in %d bytes" % (n, p, limit - p)
            )
        end = p + n - 1  # offset of the terminating NUL
        buf = self.buf
        if buf[end] != 0:
            raise BSONError("document at %d does not end with NUL" % p)
        out = [] if array else {}
        p += 4
        depth += 1
        while p < end:
            self.items -= 1
            if self.items < 0:
                raise BSONError("more than the allowed number of elements")
            t = buf[p]
            z = self.key_end(p + 1, end)
            if array:
                key = None  # array keys ("0", "1", ...) are ignored, as pymongo does
            else:
                try:
                    key = str(buf[p + 1 : z], "utf-8")
                except UnicodeError:
                    raise BSONError("invalid UTF-8 in key at %d" % (p + 1))
                if key in out:
                    raise BSONError("repeated key %r" % key)
            p = z + 1
            value, p = self.value(t, p, end, depth)
            if array:
                out.append(value)
            else:
                out[key] = value
        if p != end:
            raise BSONError("element runs past the end of its document")
        return out, end + 1

    def value(self, t, p, end, depth):
        buf = self.buf
        if t == _DOUBLE:
            if p + 8 > end:
                raise BSONError("truncated double at %d" % p)
            return struct.unpack_from("<d", buf, p)[0], p + 8
        if t == _STRING:
            n = self.int32(p, end)
            p += 4
            if n < 1 or n > end - p:
                raise BSONError("string length %d at %d does not fit" % (n, p - 4))
            if buf[p + n - 1] != 0:
                raise BSONError("string at %d does not end with NUL" % (p - 4))
            try:
                return str(buf[p : p + n - 1], "utf-8"), p + n
            except UnicodeError:
                raise BSONError("invalid UTF-8 in string at %d" % p)
        if t == _DOCUMENT or t == _ARRAY:
            return self.document(p, end, depth, t == _ARRAY)
        if t == _BINARY:
            n = self.int32(p, end)
            p += 5  # length and subtype
            if n < 0 or n > end - p:
                raise BSONError("binary length %d at %d does not fit" % (n, p - 5))
            sub = buf[p - 1]
            if sub == 0:
                return bytes(buf[p : p + n]), p + n
            if sub == _OLD_BINARY:
                if n < 4 or self.int32(p, end) != n - 4:
                    raise BSONError("binary subtype 2 with inconsistent lengths at %d" % p)
                return Binary(buf[p + 4 : p + n], sub), p + n
            return Binary(buf[p : p + n], sub), p + n
        if t == _BOOL:
            if p >= end:
                raise BSONError("truncated bool at %d" % p)
            b = buf[p]
            if b > 1:
                raise BSONError("bool byte %d at %d is neither 0 nor 1" % (b, p))
            return b == 1, p + 1
        if t == _DATETIME or t == _INT64:
            if p + 8 > end:
                raise BSONError("truncated int64 at %d" % p)
            v = struct.unpack_from("<q", buf, p)[0]
            return (UTCDateTime(v) if t == _DATETIME else v), p + 8
        if t == _INT32:
            return self.int32(p, end), p + 4
        if t == _NULL:
            return None, p
        raise BSONError("unsupported element type 0x%02x at %d" % (t, p))


def loads(buf, max_depth=16, max_items=4096):
    """Decode exactly one BSON document filling buf (bytes, bytearray or memoryview).

    max_depth bounds the nesting of documents and arrays (the top document counts);
    max_items bounds the number of elements at all levels together.
    """
    if isinstance(buf, memoryview):
        buf = bytes(buf)  # find() is needed for keys; memoryviews lack it
    elif not isinstance(buf, (bytes, bytearray)):
        raise BSONError("expected bytes, got %s" % type(buf).__name__)
    try:
        dec = _Decoder(buf, max_depth, max_items)
        if len(buf) < _MIN_DOC:
            raise BSONError("%d bytes cannot hold a document" % len(buf))
        n = dec.int32(0, len(buf))
        if n != len(buf):
            # Checked first, so trailing bytes and truncation say which they are.
            if _MIN_DOC <= n < len(buf):
                raise BSONError("%d trailing bytes after the document" % (len(buf) - n))
            raise BSONError("document length %d but %d bytes given" % (n, len(buf)))
        doc, _ = dec.document(0, len(buf), 0, False)
    except (MemoryError, RuntimeError) as exc:
        # Out of RAM or C stack on a small device: still an input the caller rejects.
        raise BSONError("input too large to decode: %s" % type(exc).__name__)
    return doc
