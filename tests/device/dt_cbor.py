"""tether.cbor on both interpreters: RFC 8949 Appendix A, Arduino wire vectors, limits and
a corpus of malformed input that must raise CBORError and nothing else."""

import binascii
import math
import struct

from harness import raises
from tether.cbor import CBORError, Simple, Tag, dumps, loads


def h(text):
    return binascii.unhexlify(text.replace(" ", ""))


def hx(data):
    return binascii.hexlify(data).decode()


def same(a, b):
    # Equality that also tells 1 from 1.0 from True, -0.0 from 0.0 and matches nan.
    if type(a) is not type(b):
        return False
    if type(a) is float:
        if a != a:
            return b != b
        return struct.pack(">d", a) == struct.pack(">d", b)
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if type(a) is dict:
        return len(a) == len(b) and all(k in b and same(a[k], b[k]) for k in a)
    if type(a) is Tag:
        return a.tag == b.tag and same(a.value, b.value)
    return a == b


def check_decodes(cases):
    for text, want in cases:
        got = loads(h(text))
        assert same(got, want), (text, got, want)


def check_round_trips(cases):
    # Decode the RFC bytes, and encode the value back to exactly those bytes.
    for text, value in cases:
        assert hx(dumps(value)) == text.replace(" ", ""), (text, hx(dumps(value)))
        got = loads(h(text))
        assert same(got, value), (text, got, value)


# ---------------------------------------------------------------- every major type


def test_unsigned_integers_use_the_shortest_head():
    check_round_trips(
        [
            ("00", 0),
            ("01", 1),
            ("0a", 10),
            ("17", 23),
            ("1818", 24),
            ("1819", 25),
            ("1864", 100),
            ("18ff", 255),
            ("190100", 256),
            ("1903e8", 1000),
            ("19ffff", 65535),
            ("1a00010000", 65536),
            ("1a000f4240", 1000000),
            ("1affffffff", 4294967295),
            ("1b0000000100000000", 4294967296),
            ("1b000000e8d4a51000", 1000000000000),
            ("1bffffffffffffffff", 18446744073709551615),
        ]
    )


def test_negative_integers_use_the_shortest_head():
    check_round_trips(
        [
            ("20", -1),
            ("29", -10),
            ("37", -24),
            ("3818", -25),
            ("3863", -100),
            ("3903e7", -1000),
            ("3a000f423f", -1000000),
            ("3bffffffffffffffff", -18446744073709551616),
        ]
    )


def test_integers_beyond_64_bits_cannot_be_encoded():
    raises(CBORError, dumps, 18446744073709551616)
    raises(CBORError, dumps, -18446744073709551617)
    raises(CBORError, dumps, [1, 2, 1 << 70])


def test_non_preferred_integer_heads_still_decode():
    check_decodes([("1800", 0), ("190017", 23), ("1a00000001", 1), ("1b0000000000000002", 2)])
    check_decodes([("3b0000000000000000", -1)])


def test_byte_strings():
    check_round_trips([("40", b""), ("4401020304", b"\x01\x02\x03\x04")])
    assert hx(dumps(bytearray(b"\x01\x02"))) == "420102"
    assert hx(dumps(memoryview(b"xx\x01\x02")[2:])) == "420102"
    long = bytes(range(256)) * 2
    assert dumps(long)[:3] == h("590200")
    assert loads(dumps(long)) == long


def test_text_strings():
    check_round_trips(
        [
            ("60", ""),
            ("6161", "a"),
            ("6449455446", "IETF"),
            ("62225c", '"\\'),
            ("62c3bc", "\u00fc"),
            ("63e6b0b4", "\u6c34"),
            ("64f0908591", "\U00010151"),
        ]
    )
    s = "x" * 300
    assert dumps(s)[:3] == h("79012c") and loads(dumps(s)) == s


def test_arrays():
    check_round_trips(
        [
            ("80", []),
            ("83010203", [1, 2, 3]),
            ("8301820203820405", [1, [2, 3], [4, 5]]),
            ("98190102030405060708090a0b0c0d0e0f101112131415161718181819", list(range(1, 26))),
        ]
    )
    assert hx(dumps((1, (2,)))) == "82018102"


def test_maps():
    check_round_trips(
        [
            ("a0", {}),
            ("a10102", {1: 2}),
            ("826161a161626163", ["a", {"b": "c"}]),
        ]
    )
    # Several keys: key order is the dict's, which MicroPython does not keep; compare values.
    check_decodes(
        [
            ("a201020304", {1: 2, 3: 4}),
            ("a26161016162820203", {"a": 1, "b": [2, 3]}),
            (
                "a56161614161626142616361436164614461656145",
                dict(a="A", b="B", c="C", d="D", e="E"),
            ),
        ]
    )
    value = {1: "x", "k": [True, None], b"\x00": {2: 3.5}, -7: Tag(5, b"")}
    assert same(loads(dumps(value)), value)


def test_simple_values():
    check_round_trips([("f4", False), ("f5", True), ("f6", None), ("f0", Simple(16))])
    check_round_trips([("f820", Simple(32)), ("f8ff", Simple(255)), ("e0", Simple(0))])
    assert loads(h("f7")) is None  # undefined
    assert Simple(16) == Simple(16) and Simple(16) != Simple(17) and Simple(1) != 1
    for bad in (20, 23, 24, 31, 256, -1):
        raises(CBORError, Simple, bad)


def test_floats_encode_as_float64():
    check_round_trips(
        [
            ("fb3ff199999999999a", 1.1),
            ("fb4039800000000000", 25.5),
            ("fbc010666666666666", -4.1),
            ("fb7e37e43c8800759c", 1.0e300),
            ("fb0000000000000000", 0.0),
            ("fb8000000000000000", -0.0),
            ("fb7ff0000000000000", float("inf")),
            ("fbfff0000000000000", float("-inf")),
        ]
    )
    assert math.isnan(loads(dumps(float("nan"))))


def test_float16_decodes_by_hand():
    inf = float("inf")
    check_decodes(
        [
            ("f90000", 0.0),
            ("f98000", -0.0),
            ("f93c00", 1.0),
            ("f93e00", 1.5),
            ("f97bff", 65504.0),
            ("f90001", 5.960464477539063e-08),
            ("f90400", 0.00006103515625),
            ("f9c400", -4.0),
            ("f97c00", inf),
            ("f9fc00", -inf),
            ("f903ff", 0.00006097555160522461),  # largest subnormal
            ("f93555", 0.333251953125),
        ]
    )
    assert math.isnan(loads(h("f97e00")))
    assert math.isnan(loads(h("f97c01")))  # any non-zero mantissa with exponent 31


def test_float32_and_float64_decode():
    inf = float("inf")
    check_decodes(
        [
            ("fa47c35000", 100000.0),
            ("fa7f7fffff", 3.4028234663852886e38),
            ("fa7f800000", inf),
            ("faff800000", -inf),
            ("fa41cc0000", 25.5),
            ("fb7ff0000000000000", inf),
            ("fbfff0000000000000", -inf),
        ]
    )
    assert math.isnan(loads(h("fa7fc00000")))
    assert math.isnan(loads(h("fb7ff8000000000000")))


def test_tags():
    check_round_trips(
        [
            ("c074323031332d30332d32315432303a30343a30305a", Tag(0, "2013-03-21T20:04:00Z")),
            ("c11a514b67b0", Tag(1, 1363896240)),
            ("c1fb41d452d9ec200000", Tag(1, 1363896240.5)),
            ("d74401020304", Tag(23, b"\x01\x02\x03\x04")),
            ("d818456449455446", Tag(24, b"dIETF")),
            (
                "d82076687474703a2f2f7777772e6578616d706c652e636f6d",
                Tag(32, "http://www.example.com"),
            ),
            ("c249010000000000000000", Tag(2, b"\x01" + bytes(8))),  # bignum stays a Tag
            ("d9d9f7c0f6", Tag(55799, Tag(0, None))),
            ("db000000010000000000", Tag(4294967296, 0)),
        ]
    )


def test_tag_equality_and_hash():
    assert Tag(1, [1, 2]) == Tag(1, [1, 2])
    assert Tag(1, [1, 2]) != Tag(1, [1, 3])
    assert Tag(1, 2) != Tag(2, 2)
    assert Tag(1, 2) != 2 and not (Tag(1, 2) == (1, 2))
    assert hash(Tag(7, "a")) == hash(Tag(7, "a"))
    assert loads(h("a1c10102")) == {Tag(1, 1): 2}  # hashable tag as a map key
    assert "Tag(1, 2)" == repr(Tag(1, 2))


def test_tag_numbers_out_of_range_cannot_be_encoded():
    raises(CBORError, dumps, Tag(-1, 0))
    raises(CBORError, dumps, Tag(1 << 64, 0))
    raises(CBORError, dumps, Tag("1", 0))
    raises(CBORError, dumps, Tag(True, 0))


def test_indefinite_length_items():
    check_decodes(
        [
            ("5f42010243030405ff", b"\x01\x02\x03\x04\x05"),
            ("5fff", b""),
            ("7f657374726561646d696e67ff", "streaming"),
            ("7f62c3bc6161ff", "\u00fca"),
            ("9fff", []),
            ("9f018202039f0405ffff", [1, [2, 3], [4, 5]]),
            ("9f01820203820405ff", [1, [2, 3], [4, 5]]),
            ("83018202039f0405ff", [1, [2, 3], [4, 5]]),
            ("83019f0203ff820405", [1, [2, 3], [4, 5]]),
            (
                "9f0102030405060708090a0b0c0d0e0f101112131415161718181819ff",
                list(range(1, 26)),
            ),
            ("bf61610161629f0203ffff", {"a": 1, "b": [2, 3]}),
            ("826161bf61626163ff", ["a", {"b": "c"}]),
            ("bf6346756ef563416d7421ff", {"Fun": True, "Amt": -2}),
            ("bfff", {}),
        ]
    )


def test_unsupported_types_raise_cbor_error():
    raises(CBORError, dumps, object())
    raises(CBORError, dumps, {1, 2})
    raises(CBORError, dumps, [1, {"a": object()}])


def test_self_referencing_containers_raise_cbor_error():
    loop = []
    loop.append(loop)
    raises(CBORError, dumps, loop)
    cycle = {}
    cycle["me"] = cycle
    raises(CBORError, dumps, cycle)
    tag = Tag(1, None)
    tag.value = [tag]
    raises(CBORError, dumps, tag)


def test_encoder_nesting_limit_is_32():
    assert loads(dumps(nested_list(32)), max_depth=32) == nested_list(32)
    raises(CBORError, dumps, nested_list(33))


# ------------------------------------------------------------- Arduino wire vectors

DEVICE_BEGIN = "da 00 01 07 00 81 6b 31 2e 34 2e 31 2d 61 73 79 6e 63"
GET_LAST_VALUES = "81 a2 00 63 72 3a 6d 03 6d 67 65 74 4c 61 73 74 56 61 6c 75 65 73"
SWITCH = "81 a2 00 63 73 77 31 04 f5"
TEMPERATURE = "81 a2 00 6b 74 65 6d 70 65 72 61 74 75 72 65 02 fb 40 39 80 00 00 00 00 00"
THING_BEGIN = "da 00 01 03 00 81 60"
LAST_VALUES_BEGIN = "da 00 01 05 00 80"
TIMEZONE_DOWN = "da 00 01 09 00 82 19 0e 10 1a 65 53 f1 00"


def test_arduino_commands_encode_byte_exact():
    assert dumps(Tag(0x010700, ["1.4.1-async"])) == h(DEVICE_BEGIN)
    assert dumps(Tag(0x010300, [""])) == h(THING_BEGIN)
    assert dumps(Tag(0x010500, [])) == h(LAST_VALUES_BEGIN)
    assert dumps(Tag(0x010900, [3600, 1700000000])) == h(TIMEZONE_DOWN)
    # One-key records: byte-exact whatever the interpreter's dict order.
    assert dumps([{0: "sw1"}]) == h("81 a1 00 63 73 77 31")


def test_arduino_commands_decode():
    assert loads(h(DEVICE_BEGIN)) == Tag(0x010700, ["1.4.1-async"])
    assert loads(h(THING_BEGIN)) == Tag(0x010300, [""])
    assert loads(h(LAST_VALUES_BEGIN)) == Tag(0x010500, [])
    assert loads(h(TIMEZONE_DOWN)) == Tag(0x010900, [3600, 1700000000])
    assert loads(h(GET_LAST_VALUES)) == [{0: "r:m", 3: "getLastValues"}]
    assert loads(h(SWITCH)) == [{0: "sw1", 4: True}]
    assert same(loads(h(TEMPERATURE)), [{0: "temperature", 2: 25.5}])


def test_decodes_from_a_memoryview_at_an_offset():
    frame = b"\x30\x99hdr" + h(DEVICE_BEGIN)
    assert loads(memoryview(frame)[5:]) == Tag(0x010700, ["1.4.1-async"])
    assert loads(bytearray(h(SWITCH))) == [{0: "sw1", 4: True}]
    got = loads(memoryview(b"--" + h("4401020304"))[2:])
    assert type(got) is bytes and got == b"\x01\x02\x03\x04"


def test_non_bytes_input_raises_cbor_error():
    raises(CBORError, loads, "81")
    raises(CBORError, loads, None)
    raises(CBORError, loads, [0x81, 0])


# ---------------------------------------------------------------- malformed input


def bad(text, **kw):
    raises(CBORError, loads, h(text), **kw)


def test_cbor_error_is_a_value_error():
    assert issubclass(CBORError, ValueError)


def test_empty_input():
    bad("")


def test_trailing_bytes_after_the_item():
    bad("0000")
    bad("80ff")
    bad(DEVICE_BEGIN + "00")


def test_truncated_at_every_offset():
    whole = dumps(
        [
            Tag(0x010900, [3600, 1700000000]),
            {"k": b"\x00" * 30, 7: [-1, -70000, 1.5, None, True, False]},
            "t\u00fcxt" * 5,
            1 << 63,
            Simple(200),
        ]
    )
    assert loads(whole)[3] == 1 << 63
    for vec in (whole, h(DEVICE_BEGIN), h(TEMPERATURE), h(TIMEZONE_DOWN)):
        for cut in range(len(vec)):
            raises(CBORError, loads, vec[:cut])


def test_truncated_indefinite_items():
    tail = h("9f 7f 61 61 ff 5f 41 00 ff bf 01 f9 3c00 ff ff")
    assert same(loads(tail), ["a", b"\x00", {1: 1.0}])
    for cut in range(len(tail)):
        raises(CBORError, loads, tail[:cut])


def test_deep_nesting_fails_fast():
    for opener in (b"\x81", b"\x9f", b"\xc1", b"\xa1\x00", b"\xd9\xd9\xf7"):
        raises(CBORError, loads, opener * 10000 + b"\x00")
    raises(CBORError, loads, b"\x81" * 10000)


def nested_list(levels):
    value = 0
    for _ in range(levels):
        value = [value]
    return value


def test_stack_exhaustion_is_a_cbor_error():
    # Only reachable when a caller lifts max_depth: the interpreter's own recursion limit
    # (RecursionError on CPython, RuntimeError on MicroPython) still comes out as CBORError.
    for opener in (b"\x81", b"\xa1\x00", b"\xc1"):
        raises(CBORError, loads, opener * 100000 + b"\x00", max_depth=1000000, max_items=10**7)


def test_depth_limit_is_exact():
    assert loads(b"\x81" * 16 + b"\x00") == nested_list(16)
    bad("81" * 17 + "00")
    tags = loads(b"\xc1" * 16 + b"\x00")
    for _ in range(16):
        assert tags.tag == 1
        tags = tags.value
    assert tags == 0
    bad("c1" * 17 + "00")
    assert loads(b"\xa1\x00" * 16 + b"\x00")[0][0][0] is not None
    bad("a100" * 17 + "00")
    assert loads(b"\x9f" * 16 + b"\x00" + b"\xff" * 16) == nested_list(16)
    bad("9f" * 17 + "00" + "ff" * 17)
    assert loads(b"\x81" * 3 + b"\x00", max_depth=3) == [[[0]]]
    bad("81" * 4 + "00", max_depth=3)
    assert loads(b"\x05", max_depth=0) == 5
    bad("8105", max_depth=0)


def test_huge_claimed_lengths_fail_without_allocating():
    for major in ("9b", "5b", "7b", "bb"):
        bad(major + "0000001000000000")  # 2^36
        bad(major + "ffffffffffffffff")  # 2^64 - 1
        bad(major + "0000001000000000" + "00" * 16)
    bad("9a ffffffff 00")
    bad("ba 80000000 0000")


def test_a_200kb_string_decodes_and_a_claim_of_200kb_does_not():
    n = 200 * 1024
    payload = b"\x5a" + struct.pack(">I", n) + b"\xab" * n
    got = loads(payload)
    assert len(got) == n and got[:2] == b"\xab\xab"
    text = b"\x7a" + struct.pack(">I", n) + b"z" * n
    assert len(loads(memoryview(text))) == n
    raises(CBORError, loads, b"\x5a" + struct.pack(">I", n) + b"\x00" * 5)
    raises(CBORError, loads, b"\x7a" + struct.pack(">I", n) + b"z" * 5)


def test_missing_break():
    bad("9f 01 02")
    bad("bf 01 02")
    bad("5f 41 00")
    bad("7f 61 61")
    bad("9f 9f ff")


def test_break_in_the_wrong_place():
    bad("ff")
    bad("82 01 ff")
    bad("a1 ff 01")
    bad("a1 01 ff")
    bad("bf 01 ff")  # break where a value is due
    bad("c1 ff")
    bad("81 9f ff ff")


def test_reserved_additional_information():
    for major in range(8):
        for ai in (28, 29, 30):
            raises(CBORError, loads, bytes([(major << 5) | ai]) + b"\x00" * 9)


def test_indefinite_length_where_not_allowed():
    bad("1f")
    bad("3f")
    bad("df 00")


def test_bad_chunks_in_indefinite_strings():
    bad("5f 61 61 ff")  # text chunk in a byte string
    bad("7f 41 61 ff")  # byte chunk in a text string
    bad("5f 5f ff ff")  # nested indefinite chunk
    bad("7f 01 ff")
    bad("7f 61 ff ff")  # invalid UTF-8 inside a chunk


def test_invalid_utf8():
    bad("61 ff")
    bad("61 80")
    bad("62 e2 82")
    bad("62 fe fe")
    bad("a1 62 c3 28 00")


def test_two_byte_simple_below_32():
    bad("f8 00")
    bad("f8 14")
    bad("f8 1f")


def test_unhashable_map_keys():
    bad("a1 81 01 02")  # array as key
    bad("a1 a0 01")  # map as key
    bad("a1 c1 81 01 02")  # tag wrapping an array as key
    bad("bf 80 01 ff")


def test_repeated_map_key():
    bad("a2 01 02 01 03")
    bad("bf 61 61 01 61 61 02 ff")


def test_item_count_limit():
    pack = dumps([0] * 10)  # 11 items
    assert loads(pack, max_items=11) == [0] * 10
    raises(CBORError, loads, pack, max_items=10)
    big = dumps([0] * 5000)
    raises(CBORError, loads, big)
    assert len(loads(big, max_items=5001)) == 5000
    raises(CBORError, loads, dumps({i: i for i in range(3000)}))
    indef = b"\x9f" + b"\x00" * 5000 + b"\xff"
    raises(CBORError, loads, indef)
    raises(CBORError, loads, b"\x5f" + b"\x40" * 5000 + b"\xff")  # chunks count too
    # Every decoded item counts: keys, values, tags, nested items.
    assert loads(h("c1 a1 01 82 02 03"), max_items=6) is not None
    raises(CBORError, loads, h("c1 a1 01 82 02 03"), max_items=5)


def test_random_bytes_raise_only_cbor_error():
    seed = 12345
    for _ in range(300):
        n = seed % 40
        data = bytearray()
        for _ in range(n):
            seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
            data.append(seed >> 16 & 0xFF)
        seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
        try:
            loads(bytes(data))
        except CBORError:
            pass
