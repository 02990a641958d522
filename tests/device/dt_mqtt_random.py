"""Seeded random and mutated broker input against a connected tether.mqtt client.

Runs on CPython and on the MicroPython unix port (the receive path of issue 6 item 6; the
hypothesis tests in tests/test_mqtt_fuzz.py are CPython only). Every case gets a fresh
client on a ScriptedBroker, feeds it bytes after a normal CONNECT/CONNACK, then ends the
stream, so a connection closed by one case cannot hide the next. Allowed outcomes only:

- the connection survives the input (closed later by our EOF, no protocol error), or
- it closes with "protocol error: ..." and stats["protocol_errors"] == 1;
- nothing but MQTTError comes out of connect()/publish()/wait_closed(), every wait is
  bounded, the client writes only well-formed packets, and the heap does not grow.

Where the input is well-formed up to a point, a model predicts exactly which messages are
delivered and which acks the client writes up to that point.

The PRNG is xorshift32 seeded with SEED rather than `random`: CPython and MicroPython then
play byte-identical cases, so a failure seen on one interpreter reproduces on the other.
"""

import asyncio
import gc

from harness import Rng, run
from scripted_broker import (
    ScriptedBroker,
    connack,
    hexdump,
    pingresp,
    puback,
    pubcomp,
    publish,
    pubrec,
    pubrel,
    suback,
    unsuback,
    varint,
)
from tether.mqtt import MQTTClient, MQTTError

SEED = 0x7E7E2026
MAX_PACKET = 128  # small, so oversize handling is exercised with short inputs
EOF_REASON = "connection closed by the broker (EOF)"
HAVE_MEM_FREE = hasattr(gc, "mem_free")

# Ill-formed UTF-8 that both CPython and MicroPython reject (lone continuation byte, bytes
# that never occur, a truncated sequence). Left out on purpose: overlong forms (c0 80),
# encoded surrogates (ed a0 80) and code points above U+10FFFF, which the unix port's str()
# accepts, so the client delivers them there while CPython closes the connection; and
# U+0000, which both deliver (MQTT 3.1.1 1.5.3 says close). Topics below are valid names
# only: no wildcards, not empty (4.7.3), so no test here pins the client's leniency.
BAD_UTF8 = (b"\xff", b"\xfe", b"\x80", b"a\xbfb", b"\xc3", b"x\xe2\x82")
TOPICS = ("t", "a/b", "cmd/x", "\u00fc/\u20ac", "x" * 20, "$sys")


# ---- a model of the packets a broker may legally send ---------------------------------


class Stream:
    """Well-formed broker packets plus what the client must do with them."""

    def __init__(self):
        self.data = b""
        self.delivered = []  # (topic, payload, qos) in order
        self.acks = []  # packets the client must write, in order
        self.rx_qos2 = set()
        self.next_pid = 1
        self.dups = 0

    def add(self, pkt, delivered=None, ack=None):
        self.data += pkt
        if delivered is not None:
            self.delivered.append(delivered)
        if ack is not None:
            self.acks.append(ack)

    def publish(self, topic, payload, qos, pid=None, dup=False):
        if qos and pid is None:
            pid, self.next_pid = self.next_pid, self.next_pid + 1
        pkt = publish(topic, payload, qos, pid or 0, retain=False, dup=dup)
        if qos == 2 and pid in self.rx_qos2:  # a DUP before PUBREL: not delivered again
            self.dups += 1
            self.add(pkt, None, pubrec(pid))
            return
        if qos == 2:
            self.rx_qos2.add(pid)
        self.add(
            pkt, (topic, payload, qos), puback(pid) if qos == 1 else pubrec(pid) if qos else None
        )

    def pubrel(self, pid):
        self.rx_qos2.discard(pid)
        self.add(pubrel(pid), None, pubcomp(pid))


def add_valid(rng, s):
    k = rng.below(9)
    if k < 4:
        s.publish(rng.pick(TOPICS), rng.bytes(rng.below(40)), rng.below(3))
    elif k == 4:
        s.add(pingresp())
    elif k == 5:
        s.add(puback(1 + rng.below(65535)))  # an ack for nothing in flight: ignored
    elif k == 6:
        pid = 1 + rng.below(65535)
        s.add(pubrec(pid), None, pubrel(pid))  # unknown PUBREC is still released
    elif k == 7:
        s.pubrel(1 + rng.below(65535))
    else:
        s.add(pubcomp(1 + rng.below(65535)) if rng.below(2) else unsuback(rng.below(65536)))
        if not rng.below(3):
            s.add(suback(1 + rng.below(65535), rng.pick((0, 1, 2, 0x80))))


def valid_stream(rng, n):
    s = Stream()
    for _ in range(n):
        add_valid(rng, s)
    return s


# ---- running one case -----------------------------------------------------------------


def client_packets(data):
    """Split what the client wrote into packets; fail on anything a client may not send."""
    out = []
    i = 0
    while i < len(data):
        first = data[i]
        n = shift = 0
        j = i + 1
        while True:
            assert j < len(data) and j - i <= 4, "bad length from the client: " + hexdump(data)
            n |= (data[j] & 0x7F) << shift
            shift += 7
            j += 1
            if not data[j - 1] & 0x80:
                break
        pkt = bytes(data[i : j + n])
        assert len(pkt) == j + n - i, "truncated client packet: " + hexdump(data)
        if first in (0x40, 0x50, 0x62, 0x70):
            assert n == 2, hexdump(pkt)
        elif first == 0xC0:
            assert n == 0, hexdump(pkt)
        else:
            assert first >> 4 == 3, "unexpected packet from the client: " + hexdump(pkt)
        out.append(pkt)
        i = j + n
    return out


async def settle(b, c):
    # The broker's bytes are all taken (or the client closed) and it acted on them.
    for _ in range(500):
        if not b._inbox or not c.connected:
            break
        await asyncio.sleep(0.002)
    await asyncio.sleep(0.005)


async def new_client(max_read):
    b = ScriptedBroker(max_read=max_read)
    got = []

    def on_message(topic, payload, retain, qos):
        assert type(topic) is str and type(payload) is bytes and qos in (0, 1, 2)
        got.append((topic, payload, qos))

    c = MQTTClient("fz", "broker.test", open_connection=b.open_connection, max_packet=MAX_PACKET)
    c.on_message = on_message
    task = asyncio.create_task(c.connect())
    await b.recv_packet()  # CONNECT
    b.send(connack())
    await asyncio.wait_for(task, 2)
    assert c.connected
    return b, c, got


async def feed(data, max_read=None, chunks=1):
    """Connect, send data (in `chunks` pieces), then EOF. Returns (client, delivered,
    packets the client wrote, connected just before EOF)."""
    b, c, got = await new_client(max_read)
    step = len(data) // chunks + 1
    for i in range(0, len(data), step):
        b.send(data[i : i + step])
        await asyncio.sleep(0)
    await settle(b, c)
    kept = c.connected
    b.send_eof()
    await asyncio.wait_for(c.wait_closed(), 2)
    check_outcome(c, data, kept)
    return c, got, client_packets(b.written), kept


def check_outcome(c, data, kept):
    reason = c.close_reason
    assert not c.connected and reason, (reason, hexdump(data))
    if reason.startswith("protocol error"):
        assert c.stats["protocol_errors"] == 1, (c.stats, hexdump(data))
        assert not kept, (reason, hexdump(data))
    else:
        assert reason == EOF_REASON, (reason, hexdump(data))
        assert c.stats["protocol_errors"] == 0, (c.stats, hexdump(data))
        assert kept, hexdump(data)


def acks_of(packets):
    return [p for p in packets if p[0] >> 4 != 3]


# ---- the cases --------------------------------------------------------------------------


def test_valid_streams_deliver_and_ack_exactly():
    rng = Rng(SEED)

    async def go():
        for i in range(40):
            s = valid_stream(rng, 1 + rng.below(12))
            max_read = (None, 1, 3, 17)[i % 4]
            c, got, written, kept = await feed(s.data, max_read, 1 + rng.below(4))
            assert kept and c.close_reason == EOF_REASON, (c.close_reason, hexdump(s.data))
            assert got == s.delivered, (got, s.delivered, hexdump(s.data))
            assert written == s.acks, (written, s.acks, hexdump(s.data))

    run(go(), 60)


def mutate(rng, pkt):
    """One broken variant of a valid packet, and whether it must be a protocol error."""
    k = rng.below(5)
    if k == 0:  # flipped bytes
        b = bytearray(pkt)
        for _ in range(1 + rng.below(3)):
            b[rng.below(len(b))] ^= 1 << rng.below(8)
        return bytes(b)
    if k == 1:  # truncated: the next packet's bytes are read as its body
        return pkt[: rng.below(len(pkt))]
    if k == 2:  # wrong remaining length, body unchanged
        return pkt[:1] + varint(rng.below(300)) + pkt[2:]
    if k == 3:  # random body under a real header
        return pkt[:1] + varint(len(pkt) - 2) + rng.bytes(len(pkt) - 2)
    return pkt + rng.bytes(rng.below(6))  # trailing garbage


def test_mutated_packets_after_a_valid_prefix():
    rng = Rng(SEED + 1)

    async def go():
        closed = 0
        for i in range(150):
            s = valid_stream(rng, rng.below(5))
            prefix_delivered = list(s.delivered)
            prefix_acks = list(s.acks)
            one = valid_stream(rng, 1)
            tail = valid_stream(rng, rng.below(4))
            data = s.data + mutate(rng, one.data) + tail.data
            c, got, written, kept = await feed(data, (None, 2, 9)[i % 3])
            n = len(prefix_delivered)
            assert got[:n] == prefix_delivered, (got, prefix_delivered, hexdump(data))
            acks = acks_of(written)
            assert acks[: len(prefix_acks)] == prefix_acks, (acks, prefix_acks, hexdump(data))
            closed += not kept
        assert 10 < closed < 150, closed  # both outcomes were exercised

    run(go(), 60)


def strict_error(rng):
    """A packet every MQTT 3.1.1 client must reject (protocol error)."""
    k = rng.below(6)
    if k == 0:  # a fifth remaining-length byte
        return (
            bytes([0x30 | (rng.below(3) << 1)])
            + b"\xff\xff\xff"
            + bytes([0x80 | rng.below(128)])
            + b"\x01"
        )
    if k == 1:  # types a broker never sends (CONNECT, SUBSCRIBE, PINGREQ, ...) or reserved
        t = rng.pick((0, 1, 8, 10, 12, 14, 15))
        body = rng.bytes(rng.below(8))
        return bytes([(t << 4) | (2 if t in (8, 10) else 0)]) + varint(len(body)) + body
    if k == 2:  # invalid UTF-8 topic
        topic = rng.pick(BAD_UTF8)
        return publish(topic, rng.bytes(rng.below(10)), rng.below(3), 1 + rng.below(9))
    if k == 3:  # QoS 3
        return bytes([0x36]) + b"\x05\x00\x01a\x00\x01"
    if k == 4:  # reserved flags on an ack, or PUBREL without its 0b0010
        t = rng.pick((0x41, 0x52, 0x60, 0x78, 0x94, 0xB1, 0xD8))
        return bytes([t, 2]) + rng.bytes(2)
    return rng.pick(
        (b"\x20\x02\x00\x00", b"\xd0\x01\x00", b"\x40\x03\x00\x01\x00", b"\x90\x02\x00\x01")
    )


def test_definite_protocol_errors_close_the_connection():
    rng = Rng(SEED + 2)

    async def go():
        for i in range(60):
            s = valid_stream(rng, rng.below(4))
            bad = strict_error(rng)
            data = s.data + bad + valid_stream(rng, rng.below(3)).data
            c, got, written, kept = await feed(data, (None, 1, 5)[i % 3])
            assert not kept and c.close_reason.startswith("protocol error"), (
                c.close_reason,
                hexdump(bad),
            )
            assert got == s.delivered, (got, s.delivered, hexdump(data))
            assert acks_of(written) == s.acks, (written, s.acks, hexdump(data))

    run(go(), 60)


def test_random_byte_streams():
    rng = Rng(SEED + 3)

    async def go():
        for i in range(150):
            n = rng.below(200)
            data = rng.bytes(n)
            if i % 2:  # most random first bytes are errors at once: start plausibly
                data = (
                    bytes([rng.pick((0x30, 0x32, 0x34, 0x40, 0x50, 0x62, 0x70, 0x90, 0xD0))])
                    + data
                )
            await feed(data, (None, 1, 7)[i % 3], 1 + rng.below(3))

    run(go(), 60)


def test_oversize_packets_are_skipped_and_the_stream_resyncs():
    rng = Rng(SEED + 4)

    async def go():
        for i in range(40):
            s = valid_stream(rng, rng.below(4))
            before_acks = list(s.acks)
            qos = rng.below(3)
            payload = rng.bytes(MAX_PACKET + rng.below(3 * MAX_PACKET))
            big = publish("big", payload, qos, 4242 if qos else 0)
            s.add(big)  # the same Stream goes on: packet ids stay distinct
            for _ in range(1 + rng.below(4)):
                add_valid(rng, s)
            data = s.data
            c, got, written, kept = await feed(data, (None, 1, 50)[i % 3], 1 + rng.below(3))
            assert kept and c.stats["oversize_dropped"] == 1, (c.stats, hexdump(data))
            assert got == s.delivered, (got, s.delivered, hexdump(data))
            acks = acks_of(written)
            want = s.acks
            if len(acks) == len(want) + 1:  # the oversize QoS 1/2 PUBLISH was acked
                assert qos and acks.pop(len(before_acks)) == (None, puback, pubrec)[qos](4242)
            assert acks == want, (acks, want, hexdump(data))

    run(go(), 60)


def test_huge_declared_lengths_and_eof_inside():
    rng = Rng(SEED + 5)

    async def go():
        for i in range(40):
            s = valid_stream(rng, rng.below(3))
            size = (268435455, 2097152, 16384, MAX_PACKET)[i % 4] - rng.below(4) * (i % 4 != 3)
            first = rng.pick((0x30, 0x32, 0x34, 0x3B, 0x40, 0x90))
            data = (
                s.data
                + bytes([first])
                + varint(size)
                + rng.bytes(rng.below(min(size, 3 * MAX_PACKET)))
            )
            c, got, written, kept = await feed(data, (None, 3)[i % 2])
            assert kept and c.close_reason == EOF_REASON, (c.close_reason, hexdump(data[:40]))
            assert c.stats["oversize_dropped"] == 1, c.stats
            assert got == s.delivered, (got, s.delivered)

    run(go(), 60)


def test_incoming_qos2_out_of_order():
    rng = Rng(SEED + 6)

    async def go():
        for i in range(40):
            s = Stream()
            pids = (7, 8, 65535)
            for _ in range(2 + rng.below(8)):
                pid = rng.pick(pids)
                if rng.below(2):
                    s.publish(rng.pick(TOPICS), rng.bytes(rng.below(8)), 2, pid, dup=rng.below(2))
                else:
                    s.pubrel(pid)
            c, got, written, kept = await feed(s.data, (None, 4)[i % 2])
            assert kept, c.close_reason
            assert got == s.delivered, (got, s.delivered, hexdump(s.data))
            assert written == s.acks, (written, s.acks, hexdump(s.data))
            assert c.stats["duplicates_dropped"] == s.dups, (c.stats, s.dups)

    run(go(), 60)


def test_outgoing_qos2_acks_out_of_order():
    rng = Rng(SEED + 7)

    async def go():
        done_count = 0
        for i in range(40):
            b, c, got = await new_client((None, 2)[i % 2])
            pub = asyncio.create_task(c.publish("out", b"v", qos=2, timeout_ms=3000))
            pkt = await b.recv_packet()
            assert pkt[0] == 0x34, hexdump(pkt)
            pid = (pkt[-3] << 8) | pkt[-2]
            state, want = 1, []  # 1: PUBREC awaited, 2: PUBCOMP awaited, 0: done
            for _ in range(1 + rng.below(6)):
                k = rng.below(4)
                p = pid if rng.below(4) else pid ^ 0x100
                if k == 0:
                    b.send(pubrec(p))
                    want.append(pubrel(p))
                    if p == pid and state == 1:
                        state = 2
                elif k == 1:
                    b.send(pubcomp(p))
                    if p == pid and state == 2:
                        state = 0
                elif k == 2:
                    b.send(puback(p))  # wrong ack for QoS 2: ignored
                else:
                    b.send(pingresp())
                await asyncio.sleep(0)
            await settle(b, c)
            assert pub.done() == (state == 0), (state, pub.done())
            b.send_eof()
            await asyncio.wait_for(c.wait_closed(), 2)
            try:
                await asyncio.wait_for(pub, 2)
                done_count += 1
                assert state == 0
            except MQTTError:
                assert state != 0
            assert c.close_reason == EOF_REASON, c.close_reason
            assert client_packets(b.written) == want, (b.written, want)
        assert 0 < done_count < 40, done_count

    run(go(), 60)


def test_heap_does_not_grow_across_a_run():
    # On the unix port: the free heap after a warm-up batch and after four more batches of
    # the same mixed cases must not shrink by more than a small slack (a leak per case,
    # e.g. buffers kept alive by a task that never ends, would be ~MAX_PACKET x 160).
    async def batch(seed):
        rng = Rng(seed)
        for i in range(40):
            s = valid_stream(rng, rng.below(4))
            data = s.data + (mutate(rng, valid_stream(rng, 1).data), strict_error(rng))[i % 2]
            await feed(data, (None, 3)[i % 2])

    run(batch(SEED + 8), 30)
    gc.collect()
    before = gc.mem_free() if HAVE_MEM_FREE else 0
    for k in range(4):
        run(batch(SEED + 9 + k), 30)
    gc.collect()
    after = gc.mem_free() if HAVE_MEM_FREE else 0
    assert before - after < 4096, (before, after)
