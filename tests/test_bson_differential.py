"""tether.bson against PyPI pymongo's `bson` (CPython only), both ways.

What we write, pymongo decodes to the same value, and what pymongo writes, we decode to the
same value. For the types both support the bytes are equal: both write int32 when a value
fits and int64 when not, in dict insertion order. Mutated documents: whatever we accept,
pymongo accepts too and reads the same value (we are never more lenient), and we raise
nothing but BSONError.
"""

import datetime
import math
import struct

import bson as pymongo_bson
from bson.binary import Binary as PBinary
from bson.codec_options import CodecOptions, DatetimeConversion
from bson.datetime_ms import DatetimeMS
from bson.int64 import Int64 as PInt64
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tether.bson import Binary, BSONError, Int64, UTCDateTime, dumps, loads

# Milliseconds as plain numbers on pymongo's side: it covers the whole int64 range, which
# datetime.datetime does not.
MS = CodecOptions(datetime_conversion=DatetimeConversion.DATETIME_MS)

INT64 = st.integers(-(2**63), 2**63 - 1)
KEYS = st.text(
    st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=8
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    INT64,
    st.integers(-(2**31), 2**31 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=30),
    st.binary(max_size=30),
    INT64.map(UTCDateTime),
    INT64.map(Int64),
    st.builds(Binary, st.binary(max_size=20), st.sampled_from([1, 2, 3, 4, 5, 0x80, 0xFF])),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(KEYS, inner, max_size=5)),
    max_leaves=25,
)
DOCS = st.dictionaries(KEYS, VALUES, max_size=6)


def to_pymongo(x):
    if isinstance(x, UTCDateTime):
        return DatetimeMS(x.ms)
    if isinstance(x, Int64):
        return PInt64(x.value)
    if isinstance(x, Binary):
        return PBinary(x.data, x.subtype)
    if isinstance(x, list):
        return [to_pymongo(i) for i in x]
    if isinstance(x, dict):
        return {k: to_pymongo(v) for k, v in x.items()}
    return x


def norm(x):
    """Either library's decoded value as a comparable form (tells 1 from 1.0 from True)."""
    if x is None:
        return ("null",)
    if x is True or x is False:
        return ("bool", x)
    if isinstance(x, (UTCDateTime, DatetimeMS)):
        return ("datetime", x.ms if isinstance(x, UTCDateTime) else int(x))
    if isinstance(x, Int64):
        return ("int", x.value)
    if isinstance(x, int):
        return ("int", int(x))
    if isinstance(x, float):
        return ("nan",) if math.isnan(x) else ("float", struct.pack("<d", x))
    if isinstance(x, str):
        return ("str", x)
    if isinstance(x, (Binary, PBinary)) and x.subtype != 0:
        return ("bin", x.subtype, bytes(x.data if isinstance(x, Binary) else x))
    if isinstance(x, (bytes, bytearray)):
        return ("bin", 0, bytes(x))
    if isinstance(x, list):
        return ("list", tuple(norm(i) for i in x))
    if isinstance(x, dict):
        return ("doc", tuple((k, norm(v)) for k, v in x.items()))
    raise AssertionError("unexpected type %r" % type(x))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(DOCS)
def test_our_bytes_equal_pymongos_and_decode_the_same(doc):
    ours = dumps(doc)
    theirs = pymongo_bson.encode(to_pymongo(doc))
    assert ours == theirs
    assert norm(pymongo_bson.decode(ours, codec_options=MS)) == norm(doc)
    assert norm(loads(ours, max_depth=64, max_items=100000)) == norm(doc)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(DOCS)
def test_we_decode_what_pymongo_writes(doc):
    raw = pymongo_bson.encode(to_pymongo(doc))
    assert norm(loads(raw, max_depth=64, max_items=100000)) == norm(
        pymongo_bson.decode(raw, codec_options=MS)
    )


def test_datetimes_go_out_as_pymongo_writes_them():
    cases = [
        datetime.datetime(2018, 9, 20, 13, 17, 2, 890000),  # naive = UTC
        datetime.datetime(2018, 9, 20, 13, 17, 2, 890999, tzinfo=datetime.timezone.utc),
        datetime.datetime(1969, 12, 31, 23, 59, 59, 999500),  # before the epoch
        datetime.datetime(
            2026, 1, 1, 8, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=-5, minutes=-30))
        ),
        datetime.datetime(1, 1, 1),
        datetime.datetime(9999, 12, 31, 23, 59, 59, 999999),
    ]
    for dt in cases:
        assert dumps({"t": dt}) == pymongo_bson.encode({"t": dt}), dt
        ms = loads(dumps({"t": dt}))["t"]
        want = pymongo_bson.decode(pymongo_bson.encode({"t": dt}), codec_options=MS)["t"]
        assert ms.ms == int(want)
        back = pymongo_bson.decode(pymongo_bson.encode({"t": dt}), CodecOptions(tz_aware=True))
        assert ms.to_datetime() == back["t"]


def test_astarte_payloads_match_pymongo():
    stamp = datetime.datetime(2018, 9, 20, 13, 17, 2, 890000, tzinfo=datetime.timezone.utc)
    for value in (16.73, 10, True, "text", b"\x00\x01", [1.5, 2.5], ["a", "b"], [True, False]):
        assert dumps({"v": value, "t": stamp}) == pymongo_bson.encode({"v": value, "t": stamp})
    obj = {"v": {"temperature": 21.5, "humidity": 40, "ok": True}}
    assert dumps(obj) == pymongo_bson.encode(obj)
    assert dumps({"v": Int64(10)}) == pymongo_bson.encode({"v": PInt64(10)})


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(DOCS, st.data())
def test_mutations_we_accept_pymongo_reads_the_same(doc, data):
    raw = bytearray(dumps(doc))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, 2))
    raw = bytes(raw[: len(raw) - cut] if cut and data.draw(st.booleans()) else raw)
    try:
        ours = loads(raw, max_depth=64, max_items=100000)
    except BSONError:
        return
    theirs = pymongo_bson.decode(raw, codec_options=MS)
    assert norm(ours) == norm(theirs)
