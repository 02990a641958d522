"""tether.bson on both interpreters: the Astarte vectors of protocols.md §5.5, every type both
ways, the int32/int64 choice, limits, and a corpus of malformed input that must raise
BSONError and nothing else."""

import struct
from collections import OrderedDict

from harness import Rng, raises
from tether.bson import Binary, BSONError, Int64, UTCDateTime, dumps, loads


def h(text):
    return bytes.fromhex(text.replace(" ", ""))


def i32(n):
    return struct.pack("<i", n)


def doc(body):
    """A document around raw element bytes: length, elements, NUL."""
    return i32(len(body) + 5) + body + b"\x00"


def bad(data, **kw):
    return raises(BSONError, loads, data, **kw)


def ordered(*pairs):
    d = OrderedDict()
    for k, v in pairs:
        d[k] = v
    return d


# ------------------------------------------------------------ protocols.md §5.5 vectors


def test_astarte_double_vector():
    raw = h("10 00 00 00 01 76 00 7b 14 ae 47 e1 ba 30 40 00")
    assert dumps({"v": 16.73}) == raw
    assert loads(raw) == {"v": 16.73}


def test_astarte_integer_vector():
    raw = h("0c 00 00 00 10 76 00 0a 00 00 00 00")
    assert dumps({"v": 10}) == raw
    assert loads(raw) == {"v": 10}


def test_astarte_boolean_vector():
    raw = h("09 00 00 00 08 76 00 01 00")
    assert dumps({"v": True}) == raw
    assert loads(raw) == {"v": True}


def test_astarte_timestamped_vector_in_key_order_v_t():
    raw = h("1b 00 00 00 01 76 00 7b 14 ae 47 e1 ba 30 40 09 74 00 2a 70 20 f7 65 01 00 00 00")
    value = ordered(("v", 16.73), ("t", UTCDateTime(1537449422890)))
    assert dumps(value) == raw
    assert loads(raw) == {"v": 16.73, "t": UTCDateTime(1537449422890)}


# ------------------------------------------------------------------ every type both ways


def test_strings_are_length_prefixed_and_nul_terminated():
    assert dumps({"s": ""}) == doc(b"\x02s\x00" + i32(1) + b"\x00")
    assert dumps({"s": "\u00e9"}) == doc(b"\x02s\x00" + i32(3) + b"\xc3\xa9\x00")
    assert loads(dumps({"s": "a\x00b"})) == {"s": "a\x00b"}  # NUL inside a string is fine


def test_binary_subtype_zero_is_bytes():
    raw = doc(b"\x05b\x00" + i32(3) + b"\x00\x01\x02\x03")
    assert dumps({"b": b"\x01\x02\x03"}) == raw
    assert dumps({"b": bytearray(b"\x01\x02\x03")}) == raw
    assert dumps({"b": memoryview(b"\x01\x02\x03")}) == raw
    assert loads(raw) == {"b": b"\x01\x02\x03"}
    assert loads(dumps({"b": b""})) == {"b": b""}


def test_other_binary_subtypes_round_trip_as_binary():
    raw = dumps({"u": Binary(b"\x11" * 16, 4)})
    assert raw == doc(b"\x05u\x00" + i32(16) + b"\x04" + b"\x11" * 16)
    assert loads(raw) == {"u": Binary(b"\x11" * 16, 4)}
    old = dumps({"o": Binary(b"ab", 2)})  # subtype 2 repeats the length inside
    assert old == doc(b"\x05o\x00" + i32(6) + b"\x02" + i32(2) + b"ab")
    assert loads(old) == {"o": Binary(b"ab", 2)}


def test_documents_arrays_null_and_bools():
    value = {"d": {"x": None, "y": False}, "a": [1, "two", [3.5], {"k": True}], "e": [], "f": {}}
    assert loads(dumps(value)) == value
    assert dumps({"a": [7, 8]}) == doc(
        b"\x04a\x00" + doc(b"\x100\x00" + i32(7) + b"\x101\x00" + i32(8))
    )
    assert dumps({"t": (1, 2)}) == dumps({"t": [1, 2]})


def test_ints_are_int32_when_they_fit_else_int64():
    for n in (0, 1, -1, 2**31 - 1, -(2**31)):
        raw = dumps({"n": n})
        assert raw[4] == 0x10 and len(raw) == 12, n
        assert loads(raw) == {"n": n}
    for n in (2**31, -(2**31) - 1, 2**63 - 1, -(2**63), 1537449422890):
        raw = dumps({"n": n})
        assert raw[4] == 0x12 and len(raw) == 16, n
        assert loads(raw) == {"n": n}
    raises(BSONError, dumps, {"n": 2**63})
    raises(BSONError, dumps, {"n": -(2**63) - 1})


def test_int64_forces_the_64_bit_type():
    raw = dumps({"v": Int64(10)})
    assert raw == h("10 00 00 00 12 76 00 0a 00 00 00 00 00 00 00 00")
    assert loads(raw) == {"v": 10}
    assert Int64(5) == Int64(5) and Int64(5) != Int64(6)
    raises(BSONError, Int64, 2**63)
    raises(BSONError, Int64, 1.5)


def test_utc_datetime_is_int64_milliseconds():
    raw = dumps({"t": UTCDateTime(-1)})
    assert raw == doc(b"\x09t\x00" + b"\xff" * 8)
    assert loads(raw)["t"].ms == -1
    assert UTCDateTime.from_seconds(1700000000) == UTCDateTime(1700000000000)
    assert UTCDateTime.from_seconds(1.5).ms == 1500
    assert repr(UTCDateTime(3)) == "UTCDateTime(3)"
    assert len({UTCDateTime(3), UTCDateTime(3)}) == 1
    raises(BSONError, UTCDateTime, 1.0)
    raises(BSONError, UTCDateTime, 2**63)


def test_doubles_keep_every_bit():
    for x in (0.0, -0.0, 1e308, -5e-324, float("inf"), float("-inf")):
        got = loads(dumps({"x": x}))["x"]
        assert struct.pack("<d", got) == struct.pack("<d", x), x
    nan = loads(dumps({"x": float("nan")}))["x"]
    assert nan != nan


def test_ordered_dict_fixes_the_key_order():
    a = dumps(ordered(("z", 1), ("a", 2), ("m", 3)))
    assert a == doc(b"\x10z\x00" + i32(1) + b"\x10a\x00" + i32(2) + b"\x10m\x00" + i32(3))


def test_array_keys_are_ignored_on_decode():
    # pymongo reads arrays in element order whatever the keys say; so do we.
    raw = doc(b"\x04a\x00" + doc(b"\x107\x00" + i32(1) + b"\x10x\x00" + i32(2)))
    assert loads(raw) == {"a": [1, 2]}


def test_decodes_bytes_bytearray_and_memoryview_alike():
    raw = dumps({"k": [1, "x"]})
    assert loads(raw) == loads(bytearray(raw)) == loads(memoryview(b"zz" + raw)[2:])


# ------------------------------------------------------------------------ encode errors


def test_encode_errors_are_bson_errors():
    raises(BSONError, dumps, [1, 2])  # the top level is a document
    raises(BSONError, dumps, {1: "int key"})
    raises(BSONError, dumps, {"a\x00b": 1})
    raises(BSONError, dumps, {"x": object()})
    raises(BSONError, dumps, {"x": {1, 2}})
    raises(BSONError, Binary, b"", 256)
    assert isinstance(BSONError("x"), ValueError)


def test_encoder_refuses_nesting_deeper_than_32():
    value = {}
    for _ in range(31):
        value = {"a": value}
    assert loads(dumps(value), max_depth=40) == value
    raises(BSONError, dumps, {"a": value})
    loop = []
    loop.append(loop)
    raises(BSONError, dumps, {"x": loop})


# ---------------------------------------------------------------------- decoder limits


def nested(levels):
    """`levels` documents {"a": {"a": ... {}}} as bytes, built in one buffer, no recursion."""
    out = bytearray()
    for k in range(levels - 1):
        out.extend(i32(5 + 8 * (levels - 1 - k)))
        out.extend(b"\x03a\x00")
    out.extend(i32(5))
    out.extend(bytes(levels))  # the innermost NUL, then each level's
    return bytes(out)


def test_depth_limit_is_exact():
    assert loads(nested(16)) is not None
    bad(nested(17))
    assert loads(nested(3), max_depth=3) == {"a": {"a": {}}}
    bad(nested(4), max_depth=3)
    bad(doc(b""), max_depth=0)


def test_deep_nesting_fails_fast_and_stack_exhaustion_is_a_bson_error():
    bad(nested(10000))
    # With the limit lifted the interpreter's own recursion limit still ends as BSONError.
    bad(nested(30000), max_depth=10**6, max_items=10**7)


def test_element_count_limit():
    many = {"k%d" % i: i for i in range(50)}
    assert loads(dumps(many), max_items=50) == many
    bad(dumps(many), max_items=49)
    bad(dumps({"a": [1] * 30}), max_items=30)  # the array counts as an element too
    assert len(loads(dumps({"a": [1] * 30}), max_items=31)["a"]) == 30


def test_a_large_string_decodes_and_a_claim_of_one_does_not():
    big = "z" * 100000
    assert loads(dumps({"s": big})) == {"s": big}
    bad(doc(b"\x02s\x00" + i32(100001) + b"zz\x00"))


# -------------------------------------------------------------------- malformed corpus


SAMPLE = dumps(
    ordered(
        ("d", 1.5),
        ("s", "h\u00e9llo"),
        ("o", ordered(("i", 7), ("l", 2**40))),
        ("a", [True, None, b"\x01\x02"]),
        ("t", UTCDateTime(1537449422890)),
        ("b", Binary(b"xy", 2)),
    )
)


def test_truncated_at_every_offset():
    for n in range(len(SAMPLE)):
        bad(SAMPLE[:n])
    # A prefix with its length patched to match is still malformed.
    for n in range(5, len(SAMPLE)):
        bad(i32(n) + SAMPLE[4:n])


def test_trailing_bytes_and_length_mismatches():
    good = dumps({"v": 1})
    assert loads(good) == {"v": 1}
    bad(good + b"\x00")
    bad(good + good)
    bad(i32(len(good) + 1) + good[4:])
    bad(i32(len(good) - 1) + good[4:])
    bad(b"")
    bad(b"\x05\x00\x00\x00")  # too short for its own length
    bad(i32(5) + b"\x01")  # not terminated by NUL


def test_negative_and_huge_declared_lengths():
    for n in (-1, -(2**31), 2**31 - 1, 0, 4):
        bad(i32(n) + b"\x00")
        bad(doc(b"\x02s\x00" + i32(n) + b"abcd\x00"))  # string
        bad(doc(b"\x05b\x00" + i32(n) + b"\x00abc"))  # binary
        bad(doc(b"\x03d\x00" + i32(n) + b"\x00"))  # embedded document
        bad(doc(b"\x04a\x00" + i32(n) + b"\x00"))  # embedded array
    bad(doc(b"\x05b\x00" + i32(3) + b"\x02" + i32(9) + b"x"))  # subtype 2 inner length lies
    bad(doc(b"\x05b\x00" + i32(2) + b"\x02" + b"xy"))  # subtype 2 too short for its length


def test_inner_lengths_cannot_reach_past_their_document():
    inner = doc(b"\x10i\x00" + i32(1))
    # The inner document claims one byte more than its parent holds.
    bad(doc(b"\x03d\x00" + i32(len(inner) + 1) + inner[4:]))
    # A string whose length runs over the parent's terminating NUL.
    bad(i32(14) + b"\x02s\x00" + i32(3) + b"ab\x00\x00")


def test_unterminated_strings_and_keys():
    bad(doc(b"\x02s\x00" + i32(3) + b"abc"))  # no NUL where the length says
    bad(doc(b"\x10abc"))  # key runs into the document's NUL
    bad(i32(8) + b"\x10ab")  # no NUL at all
    bad(doc(b"\x10"))  # type byte, then nothing


def test_invalid_utf8_in_strings_and_keys():
    for raw in (b"\xff", b"\xc3", b"\xe2\x82", b"a\x80b"):
        bad(doc(b"\x02s\x00" + i32(len(raw) + 1) + raw + b"\x00"))
        bad(doc(b"\x10" + raw + b"\x00" + i32(1)))


def test_unknown_and_unsupported_types():
    for t in (0x00, 0x06, 0x07, 0x0B, 0x0D, 0x11, 0x13, 0x7F, 0xFF, 0x20):
        bad(doc(bytes((t,)) + b"k\x00" + b"\x00" * 16))


def test_bad_bools_and_short_scalars():
    bad(doc(b"\x08b\x00\x02"))
    bad(doc(b"\x08b\x00"))
    bad(doc(b"\x01d\x00" + b"\x00" * 7))
    bad(doc(b"\x10i\x00" + b"\x00" * 3))
    bad(doc(b"\x12l\x00" + b"\x00" * 7))
    bad(doc(b"\x09t\x00" + b"\x00" * 7))


def test_repeated_keys():
    bad(doc(b"\x10k\x00" + i32(1) + b"\x10k\x00" + i32(2)))


def test_non_bytes_input():
    for x in (None, "text", 5, [1]):
        bad(x)


def test_mutated_samples_raise_only_bson_error():
    rng = Rng(2026)
    ok = 0
    for _ in range(1500):
        data = bytearray(SAMPLE)
        for _ in range(1 + rng.below(3)):
            data[rng.below(len(data))] = rng.below(256)
        try:
            loads(bytes(data))
            ok += 1
        except BSONError:
            pass
    assert ok < 1500  # the corpus did hit errors


def test_random_bytes_raise_only_bson_error():
    rng = Rng(99)
    for _ in range(600):
        n = rng.below(40)
        body = rng.bytes(n)
        for data in (body, i32(n + 4) + body, doc(body)):
            try:
                loads(data)
            except BSONError:
                pass
