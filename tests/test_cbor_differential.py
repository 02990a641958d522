"""tether.cbor against PyPI cbor2 (CPython only).

What our encoder writes, cbor2 decodes to the same value, and what cbor2 writes (default,
canonical, indefinite containers, float16/32 via canonical, CBORTag, simple values) we decode
to the same value. Without floats, our bytes equal cbor2's byte for byte: both write the
preferred (shortest) heads in insertion order.
"""

import math
import struct

import cbor2
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from tether.cbor import CBORError, Simple, Tag, dumps, loads

# cbor2 gives meaning to registered tags (0 datetime, 2 bignum, 258 set, ...). Tags drawn
# from these ranges are unregistered, so both sides keep them as plain tagged values.
SAFE_TAGS = st.one_of(
    st.integers(0x010000, 0x012FFF),  # the Arduino command tags
    st.integers(1_000_000, 2**32 - 1),
    st.integers(2**40, 2**64 - 1),
)


def norm(x):
    """Map either library's decoded value to a comparable, hashable form."""
    if x is None or x is cbor2.undefined:
        return ("null",)
    if x is True or x is False:
        return ("bool", x)
    if isinstance(x, int):
        return ("int", x)
    if isinstance(x, float):
        if math.isnan(x):
            return ("nan",)
        return ("float", struct.pack(">d", x))  # tells -0.0 from 0.0
    if isinstance(x, str):
        return ("str", x)
    if isinstance(x, (bytes, bytearray)):
        return ("bytes", bytes(x))
    if isinstance(x, (list, tuple)):
        return ("list", tuple(norm(i) for i in x))
    if isinstance(x, (dict, cbor2.frozendict)):  # cbor2 freezes maps inside tags
        return ("map", frozenset((norm(k), norm(v)) for k, v in x.items()))
    if isinstance(x, (Tag, cbor2.CBORTag)):
        return ("tag", x.tag, norm(x.value))
    if isinstance(x, Simple):
        return ("simple", x.value)
    if isinstance(x, cbor2.CBORSimpleValue):
        return ("simple", x.value)
    raise AssertionError("unexpected type %r" % type(x))


def to_cbor2(x):
    """Our value as cbor2 wants it for encoding."""
    if isinstance(x, Tag):
        return cbor2.CBORTag(x.tag, to_cbor2(x.value))
    if isinstance(x, Simple):
        return cbor2.CBORSimpleValue(x.value)
    if isinstance(x, list):
        return [to_cbor2(i) for i in x]
    if isinstance(x, dict):
        return {to_cbor2(k): to_cbor2(v) for k, v in x.items()}
    return x


def depth(x):
    if isinstance(x, (list, tuple)):
        return 1 + max((depth(i) for i in x), default=0)
    if isinstance(x, dict):
        return 1 + max((max(depth(k), depth(v)) for k, v in x.items()), default=0)
    if isinstance(x, Tag):
        return 1 + depth(x.value)
    return 0


def has_float(x):
    if isinstance(x, float):
        return True
    if isinstance(x, (list, tuple)):
        return any(has_float(i) for i in x)
    if isinstance(x, dict):
        return any(has_float(k) or has_float(v) for k, v in x.items())
    if isinstance(x, Tag):
        return has_float(x.value)
    return False


def has_tag(x):
    if isinstance(x, (Tag, cbor2.CBORTag)):
        return True
    if isinstance(x, (list, tuple)):
        return any(has_tag(i) for i in x)
    if isinstance(x, dict):
        return any(has_tag(k) or has_tag(v) for k, v in x.items())
    return False


INTS = st.integers(-(2**64), 2**64 - 1)
KEYS = st.one_of(st.integers(-(2**64), 2**64 - 1), st.text(max_size=8), st.binary(max_size=8))
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    INTS,
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.binary(max_size=20),
    st.sampled_from([Simple(0), Simple(19), Simple(32), Simple(255)]),
)


def trees(scalars=SCALARS):
    return st.recursive(
        scalars,
        lambda kids: st.one_of(
            st.lists(kids, max_size=5),
            st.dictionaries(KEYS, kids, max_size=5),
            st.builds(Tag, SAFE_TAGS, kids),
        ),
        max_leaves=25,
    )


FLOATLESS = st.one_of(
    st.none(),
    st.booleans(),
    INTS,
    st.text(max_size=20),
    st.binary(max_size=20),
)

# The recursive strategies have long reprs; hypothesis warns about that, harmlessly.
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(trees())
def test_cbor2_decodes_what_we_encode(value):
    assume(depth(value) <= 16)
    assert norm(cbor2.loads(dumps(value))) == norm(value)


@SETTINGS
@given(trees())
def test_we_decode_what_cbor2_encodes(value):
    assume(depth(value) <= 16)
    theirs = to_cbor2(value)
    assert norm(loads(cbor2.dumps(theirs))) == norm(value)
    assert norm(loads(cbor2.dumps(theirs, canonical=True))) == norm(value)
    assert norm(loads(cbor2.dumps(theirs, indefinite_containers=True))) == norm(value)


@SETTINGS
@given(trees())
def test_round_trip(value):
    assume(depth(value) <= 16)
    assert norm(loads(dumps(value))) == norm(value)


@SETTINGS
@given(trees(FLOATLESS))
def test_our_bytes_equal_cbor2_bytes_without_floats(value):
    assume(depth(value) <= 16)
    assert dumps(value) == cbor2.dumps(to_cbor2(value))


@SETTINGS
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_finite_floats_are_float64_like_cbor2_default(f):
    assert dumps(f) == cbor2.dumps(f)


@SETTINGS
@given(st.floats(width=16, allow_nan=False))
def test_float16_from_cbor2_canonical(f):
    data = cbor2.dumps(f, canonical=True)
    assert data[0] == 0xF9, data.hex()
    assert norm(loads(data)) == norm(f)


@SETTINGS
@given(st.integers(0, 0xFFFF))
def test_every_float16_bit_pattern_matches_cbor2(bits):
    data = b"\xf9" + bits.to_bytes(2, "big")
    ours, theirs = loads(data), cbor2.loads(data)
    assert norm(ours) == norm(theirs)
    if not math.isnan(theirs):
        assert ours == struct.unpack(">e", bits.to_bytes(2, "big"))[0]


def test_all_float16_bit_patterns_exhaustively():
    for bits in range(0x10000):
        raw = bits.to_bytes(2, "big")
        ours = loads(b"\xf9" + raw)
        want = struct.unpack(">e", raw)[0]
        if math.isnan(want):
            assert math.isnan(ours), hex(bits)
        else:
            assert struct.pack(">d", ours) == struct.pack(">d", want), hex(bits)


@SETTINGS
@given(st.floats(width=32, allow_nan=False))
def test_float32_from_cbor2_canonical(f):
    data = cbor2.dumps(f, canonical=True)
    assert data[0] in (0xF9, 0xFA), data.hex()
    assert norm(loads(data)) == norm(f)


@SETTINGS
@given(SAFE_TAGS, trees())
def test_tags_via_cbor2_cbortag(tag, value):
    assume(depth(value) <= 15)
    ours = loads(cbor2.dumps(cbor2.CBORTag(tag, to_cbor2(value))))
    assert isinstance(ours, Tag) and ours.tag == tag
    assert norm(ours) == norm(Tag(tag, value))
    back = cbor2.loads(dumps(Tag(tag, value)))
    assert isinstance(back, cbor2.CBORTag) and back.tag == tag
    assert norm(back) == norm(Tag(tag, value))


def test_simple_values_both_ways():
    for n in list(range(20)) + list(range(32, 256)):
        assert cbor2.loads(dumps(Simple(n))) == cbor2.CBORSimpleValue(n)
        assert loads(cbor2.dumps(cbor2.CBORSimpleValue(n))) == Simple(n)
    assert loads(cbor2.dumps(cbor2.undefined)) is None


def chunked(major, data, cuts):
    # An indefinite-length string built by hand: cbor2 cannot write one.
    out = bytearray([(major << 5) | 31])
    pieces, start = [], 0
    for cut in sorted(set(cuts)):
        if 0 < cut < len(data):
            pieces.append(data[start:cut])
            start = cut
    pieces.append(data[start:])
    for piece in pieces:
        out += cbor2.dumps(piece)
    out.append(0xFF)
    return bytes(out)


@SETTINGS
@given(st.binary(max_size=60), st.lists(st.integers(0, 60), max_size=6))
def test_indefinite_byte_strings_hand_built(data, cuts):
    msg = chunked(2, data, cuts)
    assert loads(msg) == cbor2.loads(msg) == data


@SETTINGS
@given(st.lists(st.text(max_size=6), max_size=6))
def test_indefinite_text_strings_hand_built(pieces):
    msg = bytearray(b"\x7f")
    for p in pieces:
        msg += cbor2.dumps(p)
    msg.append(0xFF)
    assert loads(bytes(msg)) == cbor2.loads(bytes(msg)) == "".join(pieces)


@SETTINGS
@given(st.binary(max_size=64))
def test_what_we_accept_cbor2_reads_the_same(data):
    try:
        ours = loads(data)
    except CBORError:
        return
    if has_tag(ours):
        return  # cbor2 would interpret registered tags
    assert norm(cbor2.loads(data)) == norm(ours)


APPENDIX_A = [
    "00",
    "17",
    "1818",
    "1903e8",
    "1bffffffffffffffff",
    "3bffffffffffffffff",
    "20",
    "3903e7",
    "f90000",
    "f98000",
    "f93c00",
    "fb3ff199999999999a",
    "f93e00",
    "f97bff",
    "fa47c35000",
    "fa7f7fffff",
    "fb7e37e43c8800759c",
    "f90001",
    "f90400",
    "f9c400",
    "fbc010666666666666",
    "f97c00",
    "f97e00",
    "f9fc00",
    "fa7f800000",
    "fa7fc00000",
    "faff800000",
    "fb7ff0000000000000",
    "fb7ff8000000000000",
    "fbfff0000000000000",
    "f4",
    "f5",
    "f6",
    "f0",
    "f8ff",
    "d74401020304",
    "40",
    "4401020304",
    "60",
    "6449455446",
    "62c3bc",
    "63e6b0b4",
    "64f0908591",
    "80",
    "83010203",
    "8301820203820405",
    "98190102030405060708090a0b0c0d0e0f101112131415161718181819",
    "a0",
    "a201020304",
    "a26161016162820203",
    "826161a161626163",
    "a56161614161626142616361436164614461656145",
    "5f42010243030405ff",
    "7f657374726561646d696e67ff",
    "9fff",
    "9f018202039f0405ffff",
    "9f01820203820405ff",
    "83018202039f0405ff",
    "83019f0203ff820405",
    "9f0102030405060708090a0b0c0d0e0f101112131415161718181819ff",
    "bf61610161629f0203ffff",
    "826161bf61626163ff",
    "bf6346756ef563416d7421ff",
]


@pytest.mark.parametrize("hexstr", APPENDIX_A)
def test_rfc_8949_appendix_a_matches_cbor2(hexstr):
    data = bytes.fromhex(hexstr)
    assert norm(loads(data)) == norm(cbor2.loads(data))


def test_arduino_commands_match_cbor2():
    for tag, args in [
        (0x010700, ["1.4.1-async"]),
        (0x010300, [""]),
        (0x010500, []),
        (0x010900, [3600, 1700000000]),
        (0x010200, [b"\x00" * 16, Simple(8), -3, 1700000000 * 1000000]),
    ]:
        ours = dumps(Tag(tag, args))
        assert ours == cbor2.dumps(cbor2.CBORTag(tag, to_cbor2(args)))
        assert ours[0] == 0xDA
