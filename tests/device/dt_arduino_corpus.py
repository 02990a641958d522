"""Malformed cloud messages on every cloud -> device topic, on both interpreters.

For every payload on every topic (/a/t/{thing}/e/i, /a/t/{thing}/shadow/i, /a/d/{dev}/c/dw,
/a/d/{dev}/e/i): the client stays connected (no reconnect), counts the message, logs it,
and a valid write sent right after reaches on_write.
"""

import asyncio
import gc

from fake_mqtt import FakeCloud, until
from harness import run
from tether import cbor, log, senml
from tether.arduino import ArduinoCloudClient
from tether.cbor import Tag

DEV = "3a1c5e1e-7d1b-4c2e-9f00-7e57e7e57001"
THING = "5f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"

# Counters that record "this message was refused or not understood".
_REFUSALS = ("bad_messages", "unknown_records", "rejected_thing_ids", "not_linked")


def _random_bytes(n, seed):
    # A small LCG: the same bytes on both interpreters.
    out = bytearray(n)
    x = seed
    for i in range(n):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        out[i] = (x >> 16) & 0xFF
    return bytes(out)


def _text_head(n):
    # A CBOR text string head for length n (n < 2^32).
    if n < 24:
        return bytes([0x60 + n])
    if n < 256:
        return bytes([0x78, n])
    if n < 65536:
        return bytes([0x79, n >> 8, n & 0xFF])
    return bytes([0x7A, n >> 24, (n >> 16) & 0xFF, (n >> 8) & 0xFF, n & 0xFF])


def _thing_id_pack(tid):
    return b"\x81\xa2\x00\x68thing_id\x03" + _text_head(len(tid)) + tid.encode()


def corpus():
    """(name, payload) pairs; generated lazily so a big one is freed before the next."""
    write = senml.encode([{"n": "sw1", "vb": True}])
    yield "random bytes", _random_bytes(64, 7)
    yield "random bytes 2", _random_bytes(300, 99)
    yield "empty", b""
    yield "truncated", write[:-3]
    yield "10000-deep nesting", b"\x81" * 10000 + b"\xf6"
    yield "array of 2^36 items", b"\x9b" + b"\x00\x00\x00\x10\x00\x00\x00\x00"
    yield "array of 2^64-1 items", b"\x9b" + b"\xff" * 8
    yield "bytes of 2^36", b"\x81\xa2\x00\x63sw1\x08\x5b\x00\x00\x00\x10\x00\x00\x00\x00"
    yield "bytes of 2^64-1", b"\x5b" + b"\xff" * 8 + b"xx"
    yield "missing break", b"\x9f\xa2\x00\x63sw1\x04\xf5"
    yield "tag around a pack", cbor.dumps(Tag(55799, [{0: "sw1", 4: True}]))
    yield "unknown command tag", cbor.dumps(Tag(0x01AB00, [1, 2]))
    yield "tag inside a record", b"\x81\xa2\x00\x63sw1\x04\xc1\x01"
    yield "float16 where a bool goes", b"\x81\xa2\x00\x63sw1\x04\xf9\x3c\x00"
    yield "map instead of array", b"\xa2\x00\x63sw1\x04\xf5"
    yield "record without a name", senml.encode([{"vb": True}])
    yield "record without a value", senml.encode([{"n": "sw1"}])
    yield "number for a bool", senml.encode([{"n": "sw1", "v": 1}])
    yield "text for a bool", senml.encode([{"n": "sw1", "vs": "on"}])
    yield "name is a number", b"\x81\xa2\x00\x05\x04\xf5"
    yield "bytes value", senml.encode([{"n": "sw1", "vd": b"\x01"}])
    yield "300 unknown records", senml.encode([{"n": "u%d" % i, "v": i} for i in range(300)])
    yield "3000 unknown records", senml.encode([{"n": "u%d" % i, "v": i} for i in range(3000)])
    yield "200 KB string", b"\x81\xa2\x00\x63sw1\x03" + _text_head(200000) + b"x" * 200000
    yield "thing id empty (legacy)", _thing_id_pack("")
    yield "thing id # (legacy)", _thing_id_pack("#")
    yield "thing id + (legacy)", _thing_id_pack(THING[:-1] + "+")
    yield "thing id / (legacy)", _thing_id_pack("a/b")
    yield "thing id 70 KB (legacy)", _thing_id_pack("x" * 70000)
    yield "thing id empty (command)", cbor.dumps(Tag(0x010400, [""]))
    yield "thing id # (command)", cbor.dumps(Tag(0x010400, ["#"]))
    yield "thing id + (command)", cbor.dumps(Tag(0x010400, ["+"]))
    yield "thing id 70 KB (command)", cbor.dumps(Tag(0x010400, ["y" * 70000]))
    yield "detach of another thing", cbor.dumps(Tag(0x011000, ["#"]))
    yield "last values not bytes", cbor.dumps(Tag(0x010600, [[{0: "sw1", 4: True}]]))
    yield "last values wrapping junk", cbor.dumps(Tag(0x010600, [b"\xff\xff"]))
    yield "timezone of strings", cbor.dumps(Tag(0x010900, ["a", "b"]))


class Sink:
    def __init__(self):
        self.lines = 0
        self.last = ""

    def write(self, s):
        self.lines += 1
        self.last = s


def _refusals(client, conn):
    n = conn.stats["oversize_dropped"] + client.counters["unknown_commands"]
    for k in _REFUSALS:
        n += client.counters[k]
    return n


def _run_topic(leaf_kind):
    cloud = FakeCloud(THING, command=False)  # legacy flow: shadow/i is subscribed too
    client = ArduinoCloudClient(device_id=DEV, username=DEV, password="pw")
    client.mqtt_factory = cloud.factory
    client.LAST_VALUES_MS = 60000
    writes = []
    client.register("sw1", value=False, on_write=lambda c, v: writes.append(v))
    client.register("pending", value=None)  # keeps last values (shadow/i) wanted
    sink = Sink()
    failures = []

    async def body():
        task = asyncio.create_task(client.run())
        assert await until(lambda: client.connected)
        conn = cloud.conn
        topic = {
            "thing e/i": cloud.thing("e/i"),
            "shadow/i": cloud.thing("shadow/i"),
            "c/dw": cloud.dev("c/dw"),
            "device e/i": cloud.dev("e/i"),
        }[leaf_kind]
        assert topic in conn.subs, (topic, conn.subs)
        value = True
        log.basicConfig(stream=sink)
        try:
            for name, payload in corpus():
                before = _refusals(client, conn)
                logged = sink.lines
                conn.inject(topic, payload)
                payload = None
                gc.collect()
                value = not value
                n = len(writes)
                cloud.write([{"n": "sw1", "vb": value}])
                ok = await until(lambda n=n: len(writes) > n, 2000, 2) and writes[-1] is value
                if not ok:
                    failures.append("%s: the write after it did not arrive" % name)
                if cloud.conn is not conn or not conn.connected or not client.connected:
                    failures.append("%s: connection lost" % name)
                    break
                if _refusals(client, conn) <= before:
                    failures.append("%s: not counted" % name)
                if sink.lines <= logged:
                    failures.append("%s: not logged" % name)
        finally:
            log.basicConfig()
        client.stop()
        await until(lambda: task.done(), 2000)

    run(body(), 60)
    assert not failures, "\n".join(failures)
    assert cloud.connects == 1
    assert client.counters["reconnects"] == 0
    assert client.thing_id is None or client.thing_id == THING


def test_corpus_on_thing_e_i():
    _run_topic("thing e/i")


def test_corpus_on_thing_shadow_i():
    _run_topic("shadow/i")


def test_corpus_on_device_c_dw():
    _run_topic("c/dw")


def test_corpus_on_device_e_i():
    _run_topic("device e/i")


def test_float16_number_is_a_valid_write():
    cloud = FakeCloud(THING)
    client = ArduinoCloudClient(device_id=DEV, username=DEV, password="pw")
    client.mqtt_factory = cloud.factory
    got = []
    client.register("level", value=0.5, on_write=lambda c, v: got.append(v))

    async def body():
        task = asyncio.create_task(client.run())
        assert await until(lambda: client.connected)
        cloud.send(cloud.thing("e/i"), b"\x81\xa2\x00\x65level\x02\xf9\x3e\x00")  # 1.5
        await until(lambda: got)
        client.stop()
        await until(lambda: task.done(), 2000)

    run(body())
    assert got == [1.5] and client.counters["bad_messages"] == 0
