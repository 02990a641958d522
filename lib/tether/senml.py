"""SenML (RFC 8428) packs in CBOR, with the RFC 8428 section 6 integer labels.

A pack is a CBOR array of maps; each map is one record. In Python a record is a dict keyed
by the RFC short names ("n", "v", "vb", ...):

    encode([{"n": "sw1", "vb": True}])  ->  81 a2 00 63 73 77 31 04 f5
            [  {  0: "sw1",  4: true } ]

Labels follow RFC 8428: bs is -6 (micropython-lib's `senml` writes -16 instead; such a
field is an unknown label here and is skipped). Unknown labels, integer or text, are
skipped on decode as RFC 8428 section 4.4 asks; labels ending in "_" ("must understand")
are skipped too, because the profiles above decide what a record must contain.

decode() accepts what the Arduino C++ library sends as well (indefinite-length outer
array, float16/float32 values). By default it returns records as written (plain "n");
resolve=True applies the base fields (bn+n, bt+t, bu, bv+v, bs+s) per RFC 8428 4.6.
"""

from tether import cbor
from tether.cbor import CBORError
from tether.compat import const

# CBOR major types of the heads written directly by encode().
_NINT = const(1)
_ARRAY = const(4)
_MAP = const(5)

# Encoding order is fixed (base fields, then n, u, v, vs, vb, s, t, ut, vd) so the bytes
# are the same on MicroPython, whose dicts do not keep insertion order.
_FIELDS = (
    ("bver", -1),
    ("bn", -2),
    ("bt", -3),
    ("bu", -4),
    ("bv", -5),
    ("bs", -6),
    ("n", 0),
    ("u", 1),
    ("v", 2),
    ("vs", 3),
    ("vb", 4),
    ("s", 5),
    ("t", 6),
    ("ut", 7),
    ("vd", 8),
)
_NAME_OF = {}
_LABEL_OF = {}
for _name, _label in _FIELDS:
    _NAME_OF[_label] = _name
    _LABEL_OF[_name] = _label
del _name, _label

# Value type per field: text, number (int or float, not bool), bool, bytes, uint.
_TEXT_FIELDS = ("bn", "bu", "n", "u", "vs")
_NUMBER_FIELDS = ("bt", "bv", "bs", "v", "s", "t", "ut")


class SenMLError(CBORError):
    """Well-formed CBOR that is not a valid SenML pack (or a record that cannot be sent)."""


def _type_ok(name, value):
    t = type(value)
    if name in _NUMBER_FIELDS:
        return t is int or t is float  # bool is excluded: type(True) is bool
    if name in _TEXT_FIELDS:
        return t is str
    if name == "vb":
        return t is bool
    if name == "vd":
        return t is bytes or t is bytearray or t is memoryview
    # bver: a non-negative version number
    return t is int and value >= 0


def _check(name, value):
    if not _type_ok(name, value):
        raise SenMLError("SenML field %s has a value of type %s" % (name, type(value).__name__))


def encode(records):
    """Encode a list of record dicts into a definite-length CBOR array of integer-label maps.

    Raises SenMLError for an unknown field name or a value of the wrong type.
    """
    if not isinstance(records, (list, tuple)):
        raise SenMLError("a SenML pack is a list of records")
    out = bytearray()
    cbor.write_head(out, _ARRAY, len(records))
    for rec in records:
        if not isinstance(rec, dict):
            raise SenMLError("a SenML record is a dict")
        for name in rec:
            if name not in _LABEL_OF:
                raise SenMLError("unknown SenML field %r" % (name,))
            _check(name, rec[name])
        cbor.write_head(out, _MAP, len(rec))
        for name, label in _FIELDS:
            if name in rec:
                if label >= 0:
                    cbor.write_head(out, 0, label)
                else:
                    cbor.write_head(out, _NINT, -1 - label)
                cbor.encode_into(out, rec[name])
    return bytes(out)


def decode(buf, resolve=False, max_items=4096, errors=None):
    """Decode a SenML-CBOR pack into a list of dicts with short string names.

    Raises CBORError for malformed CBOR and SenMLError when the CBOR is not an array of
    maps or a known label carries a value of the wrong type.

    errors: None (the default) fails the whole pack on its first bad record. A list makes
    the check per record: a record that is not a map, or has a wrongly typed or repeated
    field, is left out and its SenMLError appended to the list; the other records are
    returned. (Malformed CBOR, or a pack that is not an array, still raises.)
    """
    pack = cbor.loads(buf, max_items=max_items)
    if not isinstance(pack, list):
        raise SenMLError("SenML pack must be a CBOR array, got %s" % type(pack).__name__)
    records = []
    for raw in pack:
        if errors is None:
            records.append(check_record(raw))
            continue
        try:
            records.append(check_record(raw))
        except SenMLError as exc:
            errors.append(exc)
    if resolve:
        return _resolve(records)
    return records


def check_record(raw):
    """One record of a decoded pack (a CBOR map) as a dict with short string names;
    SenMLError when it is not a map, or a field is wrongly typed or given twice."""
    if not isinstance(raw, dict):
        raise SenMLError("SenML record must be a CBOR map, got %s" % type(raw).__name__)
    rec = {}
    for label in raw:
        # type() and not ==: True == 1 and 2.0 == 2 must not pass for labels.
        if type(label) is int:
            name = _NAME_OF.get(label)
        elif type(label) is str and label in _LABEL_OF:
            # Tolerate the JSON-style names some senders use for the same fields.
            name = label
        else:
            name = None
        if name is None:
            continue  # unknown label: skipped (RFC 8428 4.4)
        value = raw[label]
        _check(name, value)
        if name in rec:
            raise SenMLError("SenML field %s given twice in one record" % name)
        rec[name] = value
    return rec


def _resolve(records):
    # RFC 8428 4.6: base values apply to this and every later record until replaced.
    bn = ""
    bt = 0
    bu = None
    bv = None
    bs = None
    out = []
    for rec in records:
        bn = rec.get("bn", bn)
        bt = rec.get("bt", bt)
        bu = rec.get("bu", bu)
        bv = rec.get("bv", bv)
        bs = rec.get("bs", bs)
        res = {}
        name = bn + rec.get("n", "")
        if name:
            res["n"] = name
        if "t" in rec or bt:
            res["t"] = bt + rec.get("t", 0)
        unit = rec.get("u", bu)
        if unit is not None:
            res["u"] = unit
        # Base value and base sum are added to a value or sum the record has; a record
        # without one does not get one made up.
        if "v" in rec:
            res["v"] = rec["v"] + bv if bv is not None else rec["v"]
        if "s" in rec:
            res["s"] = rec["s"] + bs if bs is not None else rec["s"]
        for name in ("vs", "vb", "vd", "ut"):
            if name in rec:
                res[name] = rec[name]
        out.append(res)
    return out


def value_of(record):
    """The record's value: v, vs, vb or vd (first present), or None when it has none."""
    for name in ("v", "vs", "vb", "vd"):
        if name in record:
            return record[name]
    return None
