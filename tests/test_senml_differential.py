"""tether.senml against micropython-senml (PyPI) and cbor2 (CPython only).

micropython-senml (the library arduino-iot-cloud-py uses) writes and reads SenML-CBOR with
cbor2. Its quirks decide what is compared:
- it labels bs (base sum) -16, not RFC 8428's -6: bs is left out of the comparisons, and a
  separate test shows its -16 field is skipped by our decoder as an unknown label;
- its reader takes only name and value from a record and base64-decodes vd (a bug in the
  CBOR path: it reads the vb label), so records we send it carry no vd;
- its writer leaves out zero/empty t, u and ut, and needs a value in every record.
"""

import math
import struct

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from senml import SenmlPack, SenmlRecord
from tether import senml
from tether.senml import SenMLError, decode, encode, value_of

LABELS = {-1: "bver", -2: "bn", -3: "bt", -4: "bu", -5: "bv", -6: "bs", 0: "n", 1: "u"}
LABELS.update({2: "v", 3: "vs", 4: "vb", 5: "s", 6: "t", 7: "ut", 8: "vd"})

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def norm(x):
    if isinstance(x, float):
        return ("nan",) if math.isnan(x) else ("float", struct.pack(">d", x))
    if isinstance(x, bool):
        return ("bool", x)
    if isinstance(x, (bytes, bytearray)):
        return ("bytes", bytes(x))
    if isinstance(x, dict):
        return ("map", frozenset((k, norm(v)) for k, v in x.items()))
    if isinstance(x, (list, tuple)):
        return ("list", tuple(norm(i) for i in x))
    return (type(x).__name__, x)


NAMES = st.text(min_size=1, max_size=12)
NUMBERS = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=True),
)
NONZERO = st.one_of(st.integers(1, 2**40), st.floats(0.5, 1e12))


@st.composite
def records(draw, with_vd=True):
    rec = {"n": draw(NAMES)}
    kinds = ["v", "vs", "vb"] + (["vd"] if with_vd else [])
    kind = draw(st.sampled_from(kinds))
    rec[kind] = draw(
        {
            "v": NUMBERS,
            "vs": st.text(max_size=20),
            "vb": st.booleans(),
            "vd": st.binary(max_size=20),
        }[kind]
    )
    if draw(st.booleans()):
        rec["t"] = draw(NONZERO)
    if draw(st.booleans()):
        rec["u"] = draw(st.sampled_from(["Cel", "%RH", "m/s", "lx"]))
    if draw(st.booleans()):
        rec["ut"] = draw(NONZERO)
    return rec


def by_name(raw_records):
    """cbor2-decoded integer-label records -> records with names."""
    return [{LABELS[k]: v for k, v in r.items()} for r in raw_records]


@SETTINGS
@given(st.lists(records(), max_size=8))
def test_cbor2_reads_our_packs_with_rfc_labels(pack):
    raw = cbor2.loads(encode(pack))
    assert isinstance(raw, list) and all(isinstance(k, int) for r in raw for k in r)
    assert norm(by_name(raw)) == norm(pack)


@SETTINGS
@given(st.lists(records(), max_size=8))
def test_we_read_cbor2_written_packs(pack):
    raw = [{k: r[LABELS[k]] for k in LABELS if LABELS[k] in r} for r in pack]
    assert norm(decode(cbor2.dumps(raw))) == norm(pack)
    # Shortest floats (float16/float32) and indefinite containers, as the C++ library sends.
    assert norm(decode(cbor2.dumps(raw, canonical=True))) == norm(pack)
    assert norm(decode(cbor2.dumps(raw, indefinite_containers=True))) == norm(pack)


@SETTINGS
@given(st.lists(records(), max_size=8))
def test_round_trip(pack):
    assert norm(decode(encode(pack))) == norm(pack)


def their_reading(data):
    seen = []
    pack = SenmlPack("", callback=lambda rec, device=None: seen.append((rec.name, rec.value)))
    pack.from_cbor(data)
    return seen


@SETTINGS
@given(st.lists(records(with_vd=False), max_size=8))
def test_micropython_senml_reads_our_packs(pack):
    # Their reader merges records that share a name into one object; keep names unique.
    names = [r["n"] for r in pack]
    pack = [r for i, r in enumerate(pack) if r["n"] not in names[:i]]
    got = their_reading(encode(pack))
    assert norm(got) == norm([(r["n"], value_of(r)) for r in pack])


def their_pack(recs):
    pack = SenmlPack("")
    for r in recs:
        value = value_of(r)
        pack.add(
            SenmlRecord(
                r["n"],
                value=bytearray(value) if isinstance(value, bytes) else value,
                time=r.get("t"),
                unit=r.get("u"),
                update_time=r.get("ut"),
            )
        )
    return pack


@SETTINGS
@given(st.lists(records(), min_size=1, max_size=8))
def test_we_read_micropython_senml_packs(pack):
    data = their_pack(pack).to_cbor()
    assert norm(decode(data)) == norm(pack)
    assert norm(decode(data)) == norm(by_name(cbor2.loads(data)))


def test_their_base_fields_resolve_to_the_same_values():
    pack = their_pack([{"n": "a", "v": 25, "t": 1005, "u": "Cel"}, {"n": "b", "v": 7, "t": 1010}])
    pack.base_value = 20
    pack.base_time = 1000
    pack.base_unit = "K"
    data = pack.to_cbor()
    plain = decode(data)
    assert plain[0]["bv"] == 20 and plain[0]["bt"] == 1000 and plain[0]["v"] == 5
    assert decode(data, resolve=True) == [
        {"n": "a", "v": 25, "t": 1005, "u": "Cel"},
        {"n": "b", "v": 7, "t": 1010, "u": "K"},
    ]


def test_their_base_sum_label_minus_16_is_skipped():
    pack = their_pack([{"n": "a", "v": 1}])
    pack.base_sum = 5
    data = pack.to_cbor()
    assert cbor2.loads(data)[0][-16] == 5  # their deviation from RFC 8428
    assert decode(data) == [{"n": "a", "v": 1}]
    assert cbor2.loads(encode([{"bs": 5}])) == [{-6: 5}]  # ours follows the RFC


@pytest.mark.parametrize(
    "record",
    [{0: 1}, {2: "x"}, {3: 5}, {4: 0}, {8: "AAE="}, {-2: 0}, {6: None}],
)
def test_wrong_types_that_cbor2_writes_are_senml_errors(record):
    with pytest.raises(SenMLError):
        decode(cbor2.dumps([record]))


def test_module_under_test_is_ours():
    assert senml.__name__ == "tether.senml"
