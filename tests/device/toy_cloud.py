"""A toy fifth cloud on the cloud base: one topic up, one down, JSON (issue 10's yardstick).

    client = ToyCloud("dev1", credentials)
    client.send(21.5)                 # up: {"v": 21.5} on toy/dev1/up, pending until PUBACK
    # down: {"ping": x} on toy/dev1/down -> the handler publishes {"pong": x} and waits for it

Everything else (connect, reconnect with backoff, credentials minted before each connect and
renewed before they expire, the handler queue, waits) is tether.cloud.client's.
"""

import json

from tether.cloud.client import CloudClient


class ToyCloud(CloudClient):
    MAX_PACKET = 1024  # the toy's messages are a few dozen bytes

    def __init__(self, device_id, credentials, server="toy.test", port=1883, **kw):
        CloudClient.__init__(
            self, device_id, server, port, credentials=credentials, keepalive=30, **kw
        )
        self.up = ("toy/%s/up" % device_id).encode()
        self.down = ("toy/%s/down" % device_id).encode()
        self.pending = []  # values not acknowledged yet (PUBACK), oldest first
        self.received = []  # messages from the cloud, decoded
        self.counters["sent"] = 0

    def send(self, value):
        """Queue a value; it stays pending until the broker acknowledged it."""
        self.pending.append(json.dumps({"v": value}))
        self.wake()

    async def serve(self):
        await self.subscribe(self.down, self._on_down)
        self.ready()
        while True:
            while self.pending:
                await self.publish(self.up, self.pending[0], 1)
                self.pending.pop(0)  # acknowledged: only now is it the cloud's
                self.counters["sent"] += 1
            await self.wait(self._has_pending, 60000)

    def _has_pending(self):
        return bool(self.pending)

    async def _on_down(self, topic, payload):
        # Runs from the base's handler queue, not in the MQTT reader: it may await.
        msg = json.loads(payload)
        self.received.append(msg)
        if "ping" in msg:
            await self.publish(self.up, json.dumps({"pong": msg["ping"]}), 1)
