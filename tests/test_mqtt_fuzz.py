"""Property tests of the MQTT receive path (CPython, hypothesis, scripted broker).

- Any sequence of PUBLISH packets, cut into reads of any size, with any max_packet: every
  packet that fits is delivered once, in order; every one that does not is counted as
  oversize; the connection stays up. This exercises the buffer compaction and the
  oversize skip across read boundaries.
- Arbitrary bytes from the broker never crash the reader: the connection either stays up
  or is closed with a protocol error (or EOF), never with an unexpected exception.
"""

import asyncio
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent / "device"))
from scripted_broker import ScriptedBroker, connack, publish  # noqa: E402
from tether import log  # noqa: E402
from tether.mqtt import MQTTClient  # noqa: E402

messages = st.lists(
    st.tuples(
        # Topic names a broker may send: no NUL, no wildcard (MQTT 3.1.1 §1.5.3, §4.7).
        st.text(min_size=1, max_size=40).filter(lambda t: not set(t) & {"\x00", "#", "+"}),
        st.binary(max_size=400),
        st.sampled_from([0, 1, 2]),
    ),
    min_size=1,
    max_size=12,
)


async def connected(broker, **kw):
    c = MQTTClient("fz", "h", open_connection=broker.open_connection, keepalive=0, **kw)
    task = asyncio.create_task(c.connect())
    await broker.recv_packet()
    broker.send(connack())
    await task
    return c


def quiet(fn):
    def wrapper(*a, **kw):
        old = log.getLevel()
        log.setLevel(log.CRITICAL)
        try:
            return fn(*a, **kw)
        finally:
            log.setLevel(old)

    return wrapper


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(msgs=messages, max_read=st.integers(1, 700), max_packet=st.integers(64, 600))
@quiet
def test_every_fitting_message_delivered_in_order(msgs, max_read, max_packet):
    async def go():
        b = ScriptedBroker(max_read=max_read)
        got = []
        c = await connected(b, max_packet=max_packet, on_message=lambda *a: got.append(a))
        wire = b""
        want = []
        oversize = 0
        for i, (topic, payload, qos) in enumerate(msgs):
            pkt = publish(topic, payload, qos=qos, pid=i + 1)
            wire += pkt
            if len(pkt) <= max_packet:
                want.append((topic, payload, False, qos))
            else:
                oversize += 1
        b.send(wire)
        b.send(publish("end", b""))  # 7 bytes: always fits, marks the end
        for _ in range(2000):
            if got and got[-1][0] == "end":
                break
            await asyncio.sleep(0.001)
        assert got[:-1] == want
        assert c.stats["oversize_dropped"] == oversize
        assert c.connected and c.stats["protocol_errors"] == 0
        c.close()

    asyncio.run(asyncio.wait_for(go(), 20))


@settings(max_examples=300, deadline=None)
@given(data=st.binary(min_size=1, max_size=300), max_read=st.integers(1, 64))
@quiet
def test_arbitrary_bytes_never_crash_the_reader(data, max_read):
    async def go():
        b = ScriptedBroker(max_read=max_read)
        c = await connected(b, max_packet=128, on_message=lambda *a: None)
        b.send(data)
        b.send_eof()
        await asyncio.wait_for(c.wait_closed(), 5)
        reason = c.close_reason
        assert reason.startswith("protocol error") or "EOF" in reason, reason

    asyncio.run(asyncio.wait_for(go(), 20))
