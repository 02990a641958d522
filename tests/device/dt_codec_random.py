"""Seeded random and mutated input against tether.cbor and tether.senml on both interpreters.

The only exception allowed out of a decoder is CBORError (SenMLError is one). Whatever
does decode must survive a re-encode/decode round trip unchanged. A fixed-seed PRNG of our
own keeps the run identical on CPython and MicroPython, so a failure reproduces anywhere.
"""

import struct

from harness import Rng
from tether import cbor, senml
from tether.cbor import CBORError, Simple, Tag


def same(a, b):
    if type(a) is not type(b):
        return False
    if type(a) is float:
        if a != a:
            return b != b
        return struct.pack(">d", a) == struct.pack(">d", b)
    if type(a) is list:
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if type(a) is dict:
        return len(a) == len(b) and all(k in b and same(a[k], b[k]) for k in a)
    if type(a) is Tag:
        return a.tag == b.tag and same(a.value, b.value)
    return a == b


NAMES = ("temp", "sw1", "r:m", "thing_id", "tz_offset", "x" * 30, "")


def random_value(rng, depth):
    k = rng.below(14 if depth < 4 else 8)
    if k == 0:
        return rng.next() >> rng.below(32)
    if k == 1:
        return -1 - (rng.next() << rng.below(33))
    if k == 2:
        return (rng.next() - 0x80000000) / 7.0
    if k == 3:
        return rng.bytes(rng.below(40))
    if k == 4:
        return NAMES[rng.below(len(NAMES))] + "\u00fc" * rng.below(3)
    if k == 5:
        return (None, True, False)[rng.below(3)]
    if k == 6:
        return Simple((1, 19, 32, 255)[rng.below(4)])
    if k == 7:
        return 0x010000 + rng.below(0x2000)
    if k in (8, 9):
        return [random_value(rng, depth + 1) for _ in range(rng.below(6))]
    if k in (10, 11):
        out = {}
        for _ in range(rng.below(5)):
            key = (rng.below(20) - 8, NAMES[rng.below(len(NAMES))])[rng.below(2)]
            out[key] = random_value(rng, depth + 1)
        return out
    return Tag(rng.next(), random_value(rng, depth + 1))


def random_record(rng):
    rec = {"n": NAMES[rng.below(len(NAMES))]}
    k = rng.below(4)
    if k == 0:
        rec["v"] = (rng.next() - 0x80000000) / 3.0 if rng.below(2) else rng.below(1000)
    elif k == 1:
        rec["vs"] = NAMES[rng.below(len(NAMES))]
    elif k == 2:
        rec["vb"] = rng.below(2) == 1
    else:
        rec["vd"] = rng.bytes(rng.below(8))
    if rng.below(3) == 0:
        rec["t"] = 1700000000 + rng.below(1000)
    return rec


def arduino_style(records):
    # What the C++ library sends: indefinite outer array, float32 values.
    out = bytearray(b"\x9f")
    for rec in records:
        body = bytearray()
        n = 0
        for name, label in (("n", 0), ("v", 2), ("vs", 3), ("vb", 4), ("t", 6), ("vd", 8)):
            if name in rec:
                n += 1
                body.extend(cbor.dumps(label))
                if name == "v" and type(rec[name]) is float:
                    body.extend(b"\xfa" + struct.pack(">f", rec[name]))
                else:
                    body.extend(cbor.dumps(rec[name]))
        out.append(0xA0 | n)
        out.extend(body)
    out.append(0xFF)
    return bytes(out)


INTERESTING = (0x00, 0x17, 0x18, 0x1B, 0x1C, 0x1F, 0x3F, 0x5B, 0x5F, 0x7F, 0x9B, 0x9F)
INTERESTING += (0xBB, 0xBF, 0xDB, 0xDF, 0xF8, 0xF9, 0xFA, 0xFB, 0xFF, 0x80, 0xA0, 0xC0)


def mutate(rng, data):
    # Built by concatenation: MicroPython's bytearray cannot delete or grow by slice.
    for _ in range(1 + rng.below(3)):
        k = rng.below(7)
        pos = rng.below(len(data) + 1)
        at = min(pos, len(data) - 1)
        if k == 0 and data:
            data = data[:at] + bytes([data[at] ^ (1 << rng.below(8))]) + data[at + 1 :]
        elif k == 1 and data:
            data = data[:at] + bytes([INTERESTING[rng.below(len(INTERESTING))]]) + data[at + 1 :]
        elif k == 2:
            data = data[:pos] + bytes([rng.next() & 0xFF]) + data[pos:]
        elif k == 3 and data:
            data = data[:at] + data[at + 1 :]
        elif k == 4:
            data = data[:pos]
        elif k == 5:
            data = (
                data[:pos]
                + b"\x9b\xff\xff\xff\xff\xff\xff\xff\xff"[: 1 + rng.below(9)]
                + data[pos:]
            )
        else:
            data = data[:pos] + data[pos : pos + rng.below(8)] + data[pos:]
    return data


def check_cbor(data, counts):
    try:
        value = cbor.loads(data)
    except CBORError:
        counts[1] += 1
        return
    counts[0] += 1
    again = cbor.loads(cbor.dumps(value))
    assert same(again, value), (data, value, again)


def check_senml(data, counts):
    try:
        records = senml.decode(data)
    except CBORError:
        counts[1] += 1
        return
    counts[0] += 1
    again = senml.decode(senml.encode(records))
    assert same(again, records), (data, records, again)


def test_random_bytes_raise_only_cbor_error():
    rng = Rng(0xC0FFEE)
    c, s = [0, 0], [0, 0]
    for _ in range(3000):
        data = rng.bytes(rng.below(24))
        check_cbor(data, c)
        check_senml(data, s)
    assert c[0] > 30 and c[1] > 1000, c  # both outcomes were exercised
    assert s[1] > 1000, s


def test_mutated_valid_cbor_raises_only_cbor_error():
    rng = Rng(12345)
    c = [0, 0]
    for _ in range(300):
        valid = cbor.dumps(random_value(rng, 0))
        assert same(cbor.loads(valid), cbor.loads(valid))
        check_cbor(valid, c)
        for _ in range(10):
            check_cbor(mutate(rng, valid), c)
    assert c[0] > 400 and c[1] > 400, c


def test_mutated_valid_senml_raises_only_cbor_error():
    rng = Rng(777)
    s = [0, 0]
    for i in range(250):
        records = [random_record(rng) for _ in range(1 + rng.below(5))]
        valid = senml.encode(records) if i % 2 else arduino_style(records)
        assert len(senml.decode(valid)) == len(records)
        check_senml(valid, s)
        for _ in range(10):
            check_senml(mutate(rng, valid), s)
    assert s[0] > 300 and s[1] > 300, s
