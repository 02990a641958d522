"""tether.senml on both interpreters: RFC 8428 integer labels, the Arduino wire vectors,
what the Arduino C++ library sends, and the errors a malformed pack raises."""

import binascii

from harness import raises
from tether import cbor, senml
from tether.cbor import CBORError, Tag
from tether.senml import SenMLError, decode, encode, value_of


def h(text):
    return binascii.unhexlify(text.replace(" ", ""))


GET_LAST_VALUES = "81 a2 00 63 72 3a 6d 03 6d 67 65 74 4c 61 73 74 56 61 6c 75 65 73"
SWITCH = "81 a2 00 63 73 77 31 04 f5"
TEMPERATURE = "81 a2 00 6b 74 65 6d 70 65 72 61 74 75 72 65 02 fb 40 39 80 00 00 00 00 00"

EVERY_FIELD = {
    "bver": 10,
    "bn": "urn:dev:",
    "bt": 1700000000,
    "bu": "Cel",
    "bv": 0.5,
    "bs": 2,
    "n": "temp",
    "u": "K",
    "v": 21.25,
    "s": 3,
    "t": -5,
    "ut": 60,
}


def test_arduino_vectors_encode_byte_exact():
    assert encode([{"n": "r:m", "vs": "getLastValues"}]) == h(GET_LAST_VALUES)
    assert encode([{"n": "sw1", "vb": True}]) == h(SWITCH)
    assert encode([{"n": "temperature", "v": 25.5}]) == h(TEMPERATURE)


def test_field_order_is_fixed_whatever_the_dict_order():
    # Base fields first, then n, u, v, vs, vb, s, t, ut, vd: same bytes on both interpreters.
    a = encode([{"t": 7, "vb": False, "n": "x", "bn": "b"}])
    b = encode([{"bn": "b", "n": "x", "vb": False, "t": 7}])
    assert a == b == h("81 a4 21 61 62 00 61 78 04 f4 06 07")


def test_arduino_vectors_decode():
    assert decode(h(GET_LAST_VALUES)) == [{"n": "r:m", "vs": "getLastValues"}]
    assert decode(h(SWITCH)) == [{"n": "sw1", "vb": True}]
    got = decode(h(TEMPERATURE))
    assert got == [{"n": "temperature", "v": 25.5}] and type(got[0]["v"]) is float


def test_every_label_is_the_rfc_8428_integer():
    rec = dict(EVERY_FIELD)
    raw = cbor.loads(encode([rec, {"vs": "s"}, {"vb": True}, {"vd": b"\x00\x01"}]))
    want = {-1: 10, -2: "urn:dev:", -3: 1700000000, -4: "Cel", -5: 0.5, -6: 2}
    want.update({0: "temp", 1: "K", 2: 21.25, 5: 3, 6: -5, 7: 60})
    assert raw[0] == want, raw[0]
    assert raw[1:] == [{3: "s"}, {4: True}, {8: b"\x00\x01"}]


def test_every_field_round_trips():
    records = [dict(EVERY_FIELD), {"n": "s", "vs": "on"}, {"n": "b", "vb": False}]
    records.append({"n": "d", "vd": b"\xff\x00"})
    assert decode(encode(records)) == records


def test_bs_is_minus_6_and_micropython_lib_minus_16_is_skipped():
    assert cbor.loads(encode([{"bs": 1}])) == [{-6: 1}]
    assert decode(h("81 a2 00 61 61 2f 01")) == [{"n": "a"}]  # -16: 1


def test_byte_values_may_be_bytearray_or_memoryview():
    assert decode(encode([{"vd": bytearray(b"ab")}])) == [{"vd": b"ab"}]
    assert decode(encode([{"vd": memoryview(b"xab")[1:]}])) == [{"vd": b"ab"}]


def test_arduino_cpp_style_indefinite_array_and_float32():
    # 9f {0: "temp", 2: 25.5 as float32} {0: "on", 4: true} ff
    data = h("9f a2 00 64 74 65 6d 70 02 fa 41 cc 00 00 a2 00 62 6f 6e 04 f5 ff")
    assert decode(data) == [{"n": "temp", "v": 25.5}, {"n": "on", "vb": True}]


def test_float16_values():
    assert decode(h("81 a2 00 61 78 02 f9 3e 00")) == [{"n": "x", "v": 1.5}]
    assert decode(h("81 a1 06 f9 c4 00")) == [{"t": -4.0}]


def test_indefinite_record_maps_and_names():
    data = h("81 bf 00 7f 62 73 77 61 31 ff 04 f4 ff")
    assert decode(data) == [{"n": "sw1", "vb": False}]


def test_unknown_labels_are_skipped():
    data = cbor.dumps(
        [
            {0: "a", 9: 1, 100: [1, 2], -100: {"x": 1}},
            {0: "b", "foo": 1, "bar_": 2, b"k": 3, 2.0: 4.5, 3: "z"},
            {True: "not u", 0: "c"},
            {Tag(1, 0): 1, 0.5: None, None: 2},
        ]
    )
    assert decode(data) == [{"n": "a"}, {"n": "b", "vs": "z"}, {"n": "c"}, {}]


def test_text_labels_with_the_rfc_names_are_accepted():
    assert decode(cbor.dumps([{"n": "a", "v": 1}])) == [{"n": "a", "v": 1}]


def test_a_field_given_twice_is_an_error():
    data = h("81 a2 00 61 61 61 6e 61 62")  # {0: "a", "n": "b"}
    raises(SenMLError, decode, data)


def test_a_record_without_a_name_is_kept():
    assert decode(h("82 a1 02 01 a0")) == [{"v": 1}, {}]
    assert decode(encode([{"v": 2}])) == [{"v": 2}]


def test_empty_pack():
    assert encode([]) == h("80")
    assert decode(h("80")) == []
    assert decode(h("9f ff")) == []


def test_not_an_array_of_maps_is_a_senml_error():
    for text in ("a1 00 61 61", "01", "61 61", "f6", "da 00 01 07 00 80", "81 81 a0", "82 a0 01"):
        raises(SenMLError, decode, h(text))
    raises(SenMLError, decode, cbor.dumps(Tag(0x010600, [encode([{"n": "a"}])])))


def test_senml_error_is_a_cbor_error():
    assert issubclass(SenMLError, CBORError) and issubclass(SenMLError, ValueError)


def test_wrong_value_types_are_senml_errors():
    cases = [
        {0: 5},  # n not text
        {0: b"n"},
        {1: 1},  # u
        {2: "1"},  # v not a number
        {2: True},  # a bool is not a number
        {2: None},
        {3: 1},  # vs not text
        {3: b"s"},
        {4: 1},  # vb not bool
        {4: None},
        {5: "3"},  # s
        {6: False},  # t
        {7: [1]},  # ut
        {8: "base64"},  # vd not bytes
        {-1: -1},  # bver is a non-negative integer
        {-1: 1.5},
        {-2: 3},  # bn
        {-3: "0"},  # bt
        {-4: 1},  # bu
        {-5: b""},  # bv
        {-6: None},  # bs
    ]
    for rec in cases:
        raises(SenMLError, decode, cbor.dumps([rec]))


def test_wrong_values_and_fields_cannot_be_encoded():
    raises(SenMLError, encode, [{"n": 1}])
    raises(SenMLError, encode, [{"v": "1"}])
    raises(SenMLError, encode, [{"v": True}])
    raises(SenMLError, encode, [{"vb": 1}])
    raises(SenMLError, encode, [{"vd": "x"}])
    raises(SenMLError, encode, [{"name": "x"}])
    raises(SenMLError, encode, [{0: "x"}])
    raises(SenMLError, encode, {"n": "x"})
    raises(SenMLError, encode, ["n"])
    raises(CBORError, encode, [{"v": 1 << 70}])


def test_malformed_cbor_is_a_cbor_error():
    whole = h(TEMPERATURE)
    for cut in range(len(whole)):
        raises(CBORError, decode, whole[:cut])
    raises(CBORError, decode, h(SWITCH) + b"\x00")
    raises(CBORError, decode, b"")
    raises(CBORError, decode, h("9b 00 00 00 10 00 00 00 00"))
    raises(CBORError, decode, h("81 a1 00 62 ff fe"))
    raises(CBORError, decode, b"\x81" * 10000)


def test_three_thousand_unknown_label_records_within_and_beyond_the_item_limit():
    data = cbor.dumps([{42: 0} for _ in range(3000)])  # 1 + 3000 * 3 items
    raises(CBORError, decode, data)
    assert decode(data, max_items=9001) == [{}] * 3000
    raises(CBORError, decode, data, max_items=9000)


def test_decodes_from_a_memoryview_at_an_offset():
    frame = b"\x00\x00" + h(SWITCH)
    assert decode(memoryview(frame)[2:]) == [{"n": "sw1", "vb": True}]


def test_last_values_update_wraps_a_pack_in_a_byte_string():
    pack = encode([{"n": "sw1", "vb": True}, {"n": "t", "v": 3}])
    msg = cbor.loads(cbor.dumps(Tag(0x010600, [pack])))
    assert decode(msg.value[0]) == [{"n": "sw1", "vb": True}, {"n": "t", "v": 3}]


def test_plain_decode_leaves_base_fields_alone():
    data = encode([{"bn": "dev:", "bt": 100, "n": "a", "t": 1, "v": 1}, {"n": "b", "v": 2}])
    assert decode(data) == [
        {"bn": "dev:", "bt": 100, "n": "a", "t": 1, "v": 1},
        {"n": "b", "v": 2},
    ]


def test_resolve_applies_base_fields_to_later_records():
    data = encode(
        [
            {"bver": 10, "bn": "dev:", "bt": 100, "bu": "Cel", "bv": 10, "n": "a", "t": 1, "v": 1},
            {"n": "b", "v": 2, "u": "K"},
            {"bn": "gw:", "bt": 200, "n": "c", "vs": "x"},
            {"n": "d"},
            {"bs": 5, "n": "e", "s": 1},
            {"n": "f", "vb": True, "ut": 9},
        ]
    )
    assert decode(data, resolve=True) == [
        {"n": "dev:a", "t": 101, "u": "Cel", "v": 11},
        {"n": "dev:b", "t": 100, "u": "K", "v": 12},
        {"n": "gw:c", "t": 200, "u": "Cel", "vs": "x"},
        {"n": "gw:d", "t": 200, "u": "Cel"},
        {"n": "gw:e", "t": 200, "u": "Cel", "s": 6},
        {"n": "gw:f", "t": 200, "u": "Cel", "vb": True, "ut": 9},
    ]


def test_resolve_without_base_fields_changes_nothing():
    records = [{"n": "a", "v": 1.5}, {"n": "b", "vd": b"\x01"}, {"v": 3}]
    assert decode(encode(records), resolve=True) == records


def test_value_of():
    assert value_of({"n": "a", "v": 0}) == 0
    assert value_of({"n": "a", "vs": ""}) == ""
    assert value_of({"n": "a", "vb": False}) is False
    assert value_of({"n": "a", "vd": b"\x00"}) == b"\x00"
    assert value_of({"n": "a", "t": 5}) is None
    assert value_of({}) is None


def test_module_exports():
    assert senml.SenMLError is SenMLError and senml.CBORError is CBORError


def test_errors_list_skips_bad_records_and_keeps_the_others():
    data = cbor.dumps([{0: "sw1", 4: True}, {0: "x", 2: "oops"}, 7, {0: "t", 2: 1}])
    raises(SenMLError, decode, data)  # the default: the whole pack fails
    errors = []
    assert decode(data, errors=errors) == [{"n": "sw1", "vb": True}, {"n": "t", "v": 1}]
    assert len(errors) == 2 and all(isinstance(e, SenMLError) for e in errors)
    assert "v" in str(errors[0]) and "map" in str(errors[1])
    twice = h("82 a2 00 61 61 61 6e 61 62 a1 00 61 63")  # {0: "a", "n": "b"}, {0: "c"}
    errors = []
    assert decode(twice, errors=errors) == [{"n": "c"}] and len(errors) == 1
    # Every wrongly typed field of the strict test is one skipped record here.
    errors = []
    assert decode(cbor.dumps([{2: "1"}, {4: 1}, {-1: -1}, {0: "ok"}]), errors=errors) == [
        {"n": "ok"}
    ]
    assert len(errors) == 3
    # A good pack leaves the list empty; resolve still applies base fields.
    errors = []
    data = cbor.dumps([{-2: "d:", 0: "a", 2: 1}, {0: "b", 3: 2.5}])
    assert decode(data, resolve=True, errors=errors) == [{"n": "d:a", "v": 1}]
    assert len(errors) == 1


def test_errors_list_does_not_hide_malformed_cbor_or_a_non_array():
    for text in ("a1 00 61 61", "01"):
        raises(SenMLError, decode, h(text), errors=[])
    raises(CBORError, decode, h(SWITCH)[:-1], errors=[])
    raises(CBORError, decode, b"\x81" * 10000, errors=[])
