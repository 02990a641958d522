"""A toy fifth cloud (toy_cloud.py, one topic up, one down, JSON) on the cloud base, over the
real tether.mqtt client and a scripted broker: values, a handler that awaits its reply
publish, a reconnect, and planned renewals of a credential that expires every 5 s."""

import asyncio
import json
import sys

from cloud_broker import CloudBroker, fast, until
from harness import run
from tether.compat import MICROPYTHON, ticks_diff, ticks_ms
from toy_cloud import ToyCloud

try:
    from tether.credentials import Credentials
except ImportError:  # pragma: no cover
    Credentials = object


class ToyBroker(CloudBroker):
    """Plays the broker for one client (cloud_broker.py); `values`: the JSON it published."""

    def __init__(self):
        super().__init__()
        self.values = []

    def on_publish(self, topic, body):
        self.values.append(json.loads(body))

    def down(self, msg):
        super().down("toy/dev1/down", msg)


class FiveSecondToken(Credentials):
    """A token that expires 5 s after it is minted (like a short SAS or JWT)."""

    needs_time = False
    expires_at = None

    def __init__(self):
        self.minted = 0

    def mint(self, now):
        self.minted += 1
        self.expires_at = now + 5
        return "dev1", "token-%d" % self.minted


def _client(broker, creds=None):
    return fast(ToyCloud("dev1", creds or FiveSecondToken()), broker)


async def _stop(client, tasks):
    client.stop()
    assert await until(lambda: tasks[0].done(), 2000)
    for t in tasks[1:]:
        t.cancel()


def test_values_are_delivered_and_a_handler_awaits_its_reply_publish():
    broker = ToyBroker()
    client = _client(broker)

    async def body():
        tasks = [asyncio.create_task(client.run()), asyncio.create_task(broker.serve())]
        assert await until(lambda: client.connected, 2000), client.stats()
        for v in (1, 2.5, "three"):
            client.send(v)
        # The handler awaits a QoS 1 publish, i.e. a PUBACK that the MQTT reader must read:
        # run inside the reader, it would wait for itself until the ack timeout.
        broker.down({"ping": 7})
        assert await until(lambda: {"pong": 7} in broker.values, 2000), broker.values
        assert await until(lambda: not client.pending, 2000)
        await _stop(client, tasks)

    run(body())
    assert [m for m in broker.values if "v" in m] == [{"v": 1}, {"v": 2.5}, {"v": "three"}]
    assert client.received == [{"ping": 7}]
    assert broker.subs == ["toy/dev1/down"]
    assert client.counters["sent"] == 3 and client.counters["bad_messages"] == 0


def test_reconnect_reuses_the_mqtt_client_and_delivers_what_waited():
    broker = ToyBroker()
    client = _client(broker)

    async def body():
        tasks = [asyncio.create_task(client.run()), asyncio.create_task(broker.serve())]
        assert await until(lambda: client.connected, 2000)
        mqtt = client.mqtt
        broker.b.send_eof()  # the broker goes away
        assert await until(lambda: not client.connected, 2000)
        client.send("offline")
        assert await until(lambda: client.connected and not client.pending, 3000)
        assert client.mqtt is mqtt  # one MQTT client (and receive buffer) per cloud client
        broker.down({"ping": 1})  # the router was set up again for the new connection
        assert await until(lambda: {"pong": 1} in broker.values, 2000)
        await _stop(client, tasks)

    run(body())
    assert broker.values[0] == {"v": "offline"}
    assert client.counters["reconnects"] == 1 and len(broker.logins) == 2
    assert broker.subs == ["toy/dev1/down", "toy/dev1/down"]


def test_without_a_credentials_provider_connect_helpers_are_dropped_after_the_first():
    # A plain user name and password need nothing of tether.cloud.connect after the MQTT
    # client is made: on MicroPython the module is dropped (RAM); reconnects still work.
    broker = ToyBroker()
    client = ToyCloud("dev1", None)
    client.username, client._password = "dev1", "secret"
    client.open_connection = broker.open_connection
    client.session.backoff_min_ms = 10
    client.session.backoff_max_ms = 20

    async def body():
        tasks = [asyncio.create_task(client.run()), asyncio.create_task(broker.serve())]
        assert await until(lambda: client.connected, 2000), client.stats()
        first = "tether.cloud.connect" in sys.modules
        broker.b.send_eof()
        assert await until(lambda: not client.connected, 2000)
        assert await until(lambda: client.connected, 3000), client.stats()
        again = "tether.cloud.connect" in sys.modules
        await _stop(client, tasks)
        return first, again

    first, again = run(body())
    assert [login[1:] for login in broker.logins] == [("dev1", "secret")] * 2
    assert client.counters["reconnects"] == 1
    if MICROPYTHON:
        assert not first and not again


def test_a_credential_that_expires_every_5_s_is_renewed_as_planned():
    broker = ToyBroker()
    creds = FiveSecondToken()
    client = _client(broker, creds)
    client.session.backoff_min_ms = 3000  # a renewal that backed off would show
    client.session.backoff_max_ms = 3000
    sent = [0]

    async def body():
        tasks = [asyncio.create_task(client.run()), asyncio.create_task(broker.serve())]
        t0 = ticks_ms()
        while ticks_diff(ticks_ms(), t0) < 9300:  # two renewals: at 4 s and 8 s
            client.send(sent[0])
            sent[0] += 1
            await asyncio.sleep(0.05)
        assert await until(lambda: client.connected and not client.pending, 3000)
        s = client.session
        assert s.renewals == 2, client.stats()
        assert s.failures == 0 and s.connection_lost == 0, s.diagnostics()
        await _stop(client, tasks)

    run(body(), 25)
    assert [u for _, u, _ in broker.logins] == ["dev1"] * 3
    assert [p for _, _, p in broker.logins] == ["token-1", "token-2", "token-3"]
    # Planned: a DISCONNECT, then the next CONNECT at once (no 3 s backoff).
    gone = broker.events_of("disconnect")
    back = broker.events_of("connect")[1:]
    assert len(gone) == 2 and len(back) == 2
    for g, c in zip(gone, back):
        assert 0 <= ticks_diff(c, g) < 1000, (g, c)
    # Every value exactly once, in order: nothing lost or sent twice across the renewals.
    assert [m["v"] for m in broker.values] == list(range(sent[0]))


class WrongClockToken(Credentials):
    """Mints tokens that, by the numbers it is given, expired long ago (a clock gone wrong)."""

    needs_time = False
    expires_at = None

    def mint(self, now):
        self.expires_at = now - 3600
        return "dev1", "stale"


def test_a_credential_that_says_it_has_expired_does_not_make_a_reconnect_storm():
    broker = ToyBroker()
    client = _client(broker, WrongClockToken())
    client.RENEW_MIN_MS = 300  # the floor between planned renewals

    async def body():
        tasks = [asyncio.create_task(client.run()), asyncio.create_task(broker.serve())]
        await asyncio.sleep(1.0)
        s = client.session
        renewals, failures = s.renewals, s.failures
        await _stop(client, tasks)
        return renewals, failures

    renewals, failures = run(body())
    assert 1 <= renewals <= 4, renewals  # at most one per 300 ms, not one per loop turn
    assert failures == 0
