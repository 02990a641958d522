"""The emulator's cheaper per-message path (tools/cloudsim/core/fastpath.py) acts on every
packet, in order, as amqtt's own did, when a client's packets arrive together.

A raw MQTT client (bytes written by hand over TLS) sends several packets in one write to the
"echo" cloud of tests/cloudsim_echo.py: the broker then reads them without waiting for the
network, where the order of its handling (a task per packet, or in line) would show.
"""

import asyncio
import json
import ssl
import struct

import pytest
from cloudsim_echo import EchoCloud
from cloudsim_fixtures import cloudsim_factory  # noqa: F401

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def sim(cloudsim_factory):  # noqa: F811
    s = cloudsim_factory(clouds=[EchoCloud()], dashboard=False)
    s.clouds["echo"].add("fp-1", "s3cret")
    return s


def _string(s):
    b = s.encode()
    return struct.pack("!H", len(b)) + b


def _packet(first, body):
    n, length = len(body), b""
    while True:
        n, digit = n >> 7, n & 0x7F
        length += bytes([digit | (0x80 if n else 0)])
        if not n:
            return bytes([first]) + length + body


def connect(client_id, user, password):
    var = _string("MQTT") + bytes([4, 0xC2]) + struct.pack("!H", 10)
    return _packet(0x10, var + _string(client_id) + _string(user) + _string(password))


def subscribe(pid, topic, qos):
    return _packet(0x82, struct.pack("!H", pid) + _string(topic) + bytes([qos]))


def publish(pid, topic, doc):
    return _packet(0x32, _string(topic) + struct.pack("!H", pid) + json.dumps(doc).encode())


DISCONNECT, PINGREQ = b"\xe0\x00", b"\xc0\x00"


async def read_packet(reader):
    first = (await reader.readexactly(1))[0]
    n = shift = 0
    while True:
        b = (await reader.readexactly(1))[0]
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return first, await reader.readexactly(n)


async def open_echo(sim):
    ctx = ssl.create_default_context(cafile=str(sim.ca.cert_pem_path))
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", sim.ports["echo"], ssl=ctx, server_hostname="localhost"
    )
    writer.write(connect("fp-1", "fp-1", "s3cret"))
    assert await asyncio.wait_for(read_packet(reader), 5) == (0x20, b"\x00\x00")
    return reader, writer


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_a_subscribe_and_a_publish_written_together_are_handled_in_order(sim):
    async def main():
        reader, writer = await open_echo(sim)
        writer.write(subscribe(1, "echo/fp-1/down", 1) + publish(2, "echo/fp-1/up", {"n": 1}))
        got = [await asyncio.wait_for(read_packet(reader), 5) for _ in range(3)]
        writer.close()
        return got

    got = run(main())
    # the SUBACK comes from the broker's client loop, the PUBACK from the packet's handling:
    # either may be first (as with amqtt's own code)
    assert sorted(got[:2]) == [(0x40, b"\x00\x02"), (0x90, b"\x00\x01\x01")]
    # the echo's reply went to the subscription the packet before the publish made
    down = got[2]
    assert down[0] & 0xF0 == 0x30
    topic_len = struct.unpack("!H", down[1][:2])[0]
    assert down[1][2 : 2 + topic_len] == b"echo/fp-1/down"
    assert json.loads(down[1][2 + topic_len + (2 if down[0] & 0x06 else 0) :]) == {
        "echo": {"n": 1}
    }


def test_publishes_then_a_disconnect_in_one_write_all_reach_the_plugin(sim):
    async def main():
        reader, writer = await open_echo(sim)
        ups = b"".join(publish(10 + i, "echo/fp-1/up", {"n": i}) for i in range(3))
        writer.write(ups + PINGREQ + DISCONNECT)
        got = [await asyncio.wait_for(read_packet(reader), 5) for _ in range(4)]
        assert await asyncio.wait_for(reader.read(), 5) == b""  # the broker closed it
        writer.close()
        return got

    got = run(main())
    assert got == [(0x40, b"\x00\x0a"), (0x40, b"\x00\x0b"), (0x40, b"\x00\x0c"), (0xD0, b"")]
    echo = sim.clouds["echo"]
    sim.wait_connected("fp-1", False, 10, "echo")
    assert [body for d, body in echo.uplinks if d == "fp-1"] == [{"n": 0}, {"n": 1}, {"n": 2}]


def test_a_publish_and_the_end_of_the_connection_in_one_read(sim):
    async def main():
        reader, writer = await open_echo(sim)
        writer.write(publish(7, "echo/fp-1/up", {"last": True}) + DISCONNECT)
        await writer.drain()
        writer.close()  # no wait for the PUBACK: the broker reads both, then the end

    run(main())
    sim.wait_connected("fp-1", False, 10, "echo")
    echo = sim.clouds["echo"]
    sim.registry.wait(lambda: ("fp-1", {"last": True}) in echo.uplinks, 10)


def test_a_puback_and_a_disconnect_in_one_write_both_count(sim):
    # The cloud's QoS 1 message to one session is acknowledged by a PUBACK that comes in
    # the same read as the DISCONNECT and the end of the stream: the PUBACK must still
    # complete the send (amqtt's own loop did: Azure's C2D relies on it).
    async def main():
        reader, writer = await open_echo(sim)
        writer.write(subscribe(1, "echo/fp-1/down", 1))
        assert await asyncio.wait_for(read_packet(reader), 5) == (0x90, b"\x00\x01\x01")
        s = sim.mqtt.sessions["echo|fp-1"]
        sent = asyncio.run_coroutine_threadsafe(
            sim.publish("echo/fp-1/down", b"{}", 1, to=s), sim.loop
        )
        first, body = await asyncio.wait_for(read_packet(reader), 5)
        assert first & 0xF6 == 0x32  # a QoS 1 PUBLISH
        pid = body[2 + struct.unpack("!H", body[:2])[0] :][:2]
        writer.write(_packet(0x40, pid) + DISCONNECT)
        await writer.drain()
        writer.close()
        return await asyncio.wrap_future(sent)

    assert run(main()) is True
