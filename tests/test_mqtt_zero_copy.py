"""The client's reused send buffers never reach a transport that keeps references.

CPython >= 3.12 queues the caller's buffer without copying when a socket is backed up
(zero-copy writes). The client refills its send buffer for the next packet as soon as
write() returns, so it must hand CPython transports a copy. This writer behaves like such a
transport: it keeps what it is given and reads it only later.
"""

import asyncio
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "device"))
from scripted_broker import ScriptedBroker, connack, publish  # noqa: E402
from tether.mqtt import MQTTClient

pytestmark = pytest.mark.timeout(30)


class KeepingWriter:
    """Wraps the scripted broker's writer; keeps every buffer by reference, like a backed-up
    zero-copy transport, and hands the bytes on only when flushed."""

    def __init__(self, inner):
        self.inner = inner
        self.kept = []

    def write(self, data):
        self.kept.append(data)  # no copy

    def flush(self):
        for data in self.kept:
            self.inner.write(bytes(data))
        self.kept.clear()

    async def drain(self):
        pass  # below the high-water mark: returns at once, nothing sent yet

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_queued_packets_keep_their_bytes_when_the_send_buffer_is_reused():
    broker = ScriptedBroker()
    writers = []

    async def open_connection(host, port, ssl=None, server_hostname=None):
        reader, writer = await broker.open_connection(host, port, ssl, server_hostname)
        writers.append(KeepingWriter(writer))
        return reader, writers[-1]

    async def main():
        client = MQTTClient("c1", "broker", keepalive=0, open_connection=open_connection)
        task = asyncio.ensure_future(client.connect())
        await asyncio.sleep(0.05)
        writers[0].flush()
        await broker.recv_packet()  # CONNECT
        broker.send(connack())
        await task
        await client.publish("t/a", b"first", qos=0)
        await client.publish("t/b", b"second", qos=0)
        await client.publish("t/c", b"third!", qos=0)
        writers[0].flush()  # the "socket" drains only now
        got = [await broker.recv_packet() for _ in range(3)]
        client.close()
        return got

    got = asyncio.run(asyncio.wait_for(main(), 10))
    assert got == [publish("t/a", b"first"), publish("t/b", b"second"), publish("t/c", b"third!")]
