"""Hypothesis fuzzing of tether.cbor.loads and tether.senml.decode (CPython only).

Arbitrary bytes, token streams built from random CBOR heads, and mutated valid messages:
the only exception that may come out is CBORError. Huge claimed lengths must fail before
anything is allocated (tracemalloc peak), and absurd nesting fails fast at any recursion
limit.
"""

import struct
import sys
import time
import tracemalloc

import cbor2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tether import cbor, senml
from tether.cbor import CBORError, Tag

SETTINGS = settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))


def only_cbor_error(data):
    for fn in (cbor.loads, senml.decode):
        try:
            fn(data)
        except CBORError:
            pass
        # Anything else propagates and fails the test.
    try:
        cbor.loads(memoryview(b"\x00" + data)[1:], max_depth=4, max_items=50)
    except CBORError:
        pass


@SETTINGS
@given(st.binary(max_size=200))
def test_arbitrary_bytes(data):
    only_cbor_error(data)


@st.composite
def head(draw):
    major = draw(st.integers(0, 7))
    ai = draw(st.integers(0, 31))
    size = {24: 1, 25: 2, 26: 4, 27: 8}.get(ai, 0)
    arg = draw(st.binary(min_size=size, max_size=size))
    return bytes([(major << 5) | ai]) + arg + draw(st.binary(max_size=3))


@SETTINGS
@given(st.lists(head(), max_size=30))
def test_random_head_streams(heads):
    only_cbor_error(b"".join(heads))


VALID = [
    bytes.fromhex("da00010700816b312e342e312d6173796e63"),
    bytes.fromhex("81a20063723a6d036d6765744c61737456616c756573"),
    bytes.fromhex("81a2006373773104f5"),
    bytes.fromhex("81a2006b74656d706572617475726502fb4039800000000000"),
    bytes.fromhex("da0001090082190e101a6553f100"),
    bytes.fromhex("9fa2006474656d7002fa41cc0000a200626f6e04f5ff"),
    bytes.fromhex("bf61610161629f0203ffff"),
    bytes.fromhex("5f42010243030405ff"),
    bytes.fromhex("7f657374726561646d696e67ff"),
    cbor.dumps(Tag(0x010600, [senml.encode([{"n": "a", "v": 1.5}, {"n": "b", "vd": b"\x00"}])])),
    cbor2.dumps([{0: "x", 2: 1.5, 6: 1700000000, 1: "Cel"}], canonical=True),
    cbor.dumps([{-2: "urn:", -3: 1.0, 0: "a", 2: -7}, {0: "b", 3: "on"}, {0: "c", 8: b"zz"}]),
]


@st.composite
def mutated(draw):
    data = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.integers(0, 4))
        pos = draw(st.integers(0, len(data)))
        if op == 0 and data:
            data[min(pos, len(data) - 1)] = draw(st.integers(0, 255))
        elif op == 1:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=9))
        elif op == 2 and data:
            del data[pos : pos + draw(st.integers(1, 4))]
        elif op == 3:
            del data[pos:]
        else:
            data[pos:pos] = draw(st.sampled_from(VALID))
    return bytes(data)


@SETTINGS
@given(mutated())
def test_mutated_valid_messages(data):
    only_cbor_error(data)


def peak_bytes_while(fn, *args):
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        try:
            fn(*args)
        except CBORError:
            pass
        else:
            raise AssertionError("no CBORError")
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_huge_claimed_lengths_never_allocate():
    headers = []
    for major in (2, 3, 4, 5):
        for n in (2**36, 2**64 - 1, 2**32 - 1):
            ai, fmt = (27, ">Q") if n > 0xFFFFFFFF else (26, ">I")
            headers.append(bytes([(major << 5) | ai]) + struct.pack(fmt, n) + b"\x00" * 8)
    headers.append(b"\x5a" + struct.pack(">I", 200 * 1024) + b"\x00" * 10)
    headers.append(b"\x81\x9b" + struct.pack(">Q", 2**36))
    headers.append(b"\xda\x00\x01\x06\x00\x81\x5b" + struct.pack(">Q", 2**64 - 1))
    for data in headers:
        for fn in (cbor.loads, senml.decode):
            peak = peak_bytes_while(fn, data)
            assert peak < 16 * 1024, (data.hex(), peak)


def test_deep_nesting_is_fast_and_needs_no_recursion():
    limit = sys.getrecursionlimit()
    # Leave a little headroom above the current stack: 16 levels fit, 10,000 never try.
    sys.setrecursionlimit(len(_stack()) + 120)
    try:
        for opener in (b"\x81", b"\x9f", b"\xc1", b"\xa1\x00", b"\xbf\x00"):
            data = opener * 10000 + b"\x00"
            t0 = time.perf_counter()
            for fn in (cbor.loads, senml.decode):
                try:
                    fn(data)
                except CBORError:
                    pass
                else:
                    raise AssertionError("decoded 10,000 levels")
            assert time.perf_counter() - t0 < 0.1
    finally:
        sys.setrecursionlimit(limit)


def _stack():
    frames, f = [], sys._getframe()
    while f is not None:
        frames.append(f)
        f = f.f_back
    return frames


def test_item_flood_is_bounded_in_time():
    data = b"\x9f" + b"\x00" * 100_000 + b"\xff"
    t0 = time.perf_counter()
    try:
        cbor.loads(data)
    except CBORError:
        pass
    else:
        raise AssertionError("100,000 items decoded under the default limit")
    assert time.perf_counter() - t0 < 0.5


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(VALID))
def test_strided_and_wide_memoryviews_decode_like_bytes(data):
    # CPython buffers MicroPython has not: a strided view and a view of 16-bit items.
    spread = bytes(x for c in data for x in (c, 0xEE))
    assert cbor.loads(memoryview(spread)[::2]) == cbor.loads(data)
    if len(data) % 2 == 0:
        import array

        wide = array.array("H")
        wide.frombytes(data)
        assert cbor.loads(memoryview(wide)) == cbor.loads(data)


UNIX_OUT_OF_MEMORY = """
import gc
from tether import cbor
cbor.loads(b"\\x00")  # loads the decoder module first: the decoding itself must run out
gc.collect()
n = gc.mem_free()
while True:  # the largest buffer the small heap can still hold
    try:
        payload = bytearray(n + 5)
        break
    except MemoryError:
        n = n * 9 // 10
payload[0] = 0x5A  # byte string, 4-byte length: decoding must copy n more bytes
payload[1:5] = n.to_bytes(4, "big")
filler = []
try:  # take every other block of that size too, leaving only small fragments
    while True:
        filler.append(bytearray(n))
except MemoryError:
    pass
try:
    cbor.loads(payload)
    result = "DECODED"
except cbor.CBORError as exc:
    result = "CBORError %s" % exc
filler = None
print(result)
"""


def test_out_of_memory_on_the_unix_port_is_a_cbor_error(tmp_path):
    import subprocess

    from mpy import micropython_cmd, micropython_env

    script = tmp_path / "oom.py"
    script.write_text(UNIX_OUT_OF_MEMORY)
    proc = subprocess.run(
        micropython_cmd(script, heapsize="64k"),
        env=micropython_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "CBORError input too large to decode: MemoryError", proc.stdout
