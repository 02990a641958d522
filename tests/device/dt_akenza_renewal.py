"""akenza token renewal on both interpreters (scripted broker): three renewals of a 5 s JWT
while a value is produced every 100 ms, none lost or duplicated; and no token minted while
the wall clock is not set (the client waits for the time instead)."""

import asyncio
import json

import key_vectors as kv
from akenza_broker import AkenzaBroker, fast, stop, until
from harness import run
from tether.akenza import AkenzaClient
from tether.compat import ticks_diff, ticks_ms
from tether.encoding import b64url_decode

DEV = "dev-1"


def _claims(token):
    return json.loads(b64url_decode(token.split(".")[1]))


def test_three_renewals_of_a_5_s_token_lose_and_repeat_nothing():
    broker = AkenzaBroker()
    client = fast(AkenzaClient(DEV, key=kv.P256_SEC1, tls=False, token_lifetime=5), broker)
    client.session.backoff_min_ms = 3000  # a renewal that backed off would show
    client.session.backoff_max_ms = 3000
    made = [0]

    async def body():
        tasks = [asyncio.create_task(client.run()), asyncio.create_task(broker.serve())]
        assert await until(lambda: client.connected, 5000), client.stats()
        t0 = ticks_ms()
        while ticks_diff(ticks_ms(), t0) < 13000:  # renewals at about 4, 8 and 12 s
            await client.publish({"n": made[0]})
            made[0] += 1
            await asyncio.sleep(0.1)
        assert await until(lambda: client.connected and not client.pending, 5000)
        s = client.session
        await until(lambda: s.renewals >= 3, 5000)  # a busy machine may finish it later
        assert s.renewals == 3, client.stats()
        assert s.failures == 0 and s.connection_lost == 0, s.diagnostics()
        await stop(client, tasks)

    run(body(), 40)
    assert made[0] >= 100
    tokens = [p for _, _, p in broker.logins]
    assert len(tokens) == 4 and len(set(tokens)) == 4
    claims = [_claims(t) for t in tokens]
    for c in claims:
        assert c["exp"] - c["iat"] == 5, c
    for a, b in zip(claims, claims[1:]):
        assert 3 <= b["iat"] - a["iat"] <= 5, claims  # fresh, before the old one expired
    # planned: DISCONNECT, then the next CONNECT at once (not after the 3 s backoff)
    gone = broker.events_of("disconnect")
    back = broker.events_of("connect")[1:]
    assert len(gone) == 3 and len(back) == 3
    for g, c in zip(gone, back):
        assert 0 <= ticks_diff(c, g) < 1000, (g, c)
    # every value exactly once, in order
    assert [json.loads(p)["n"] for _, p in broker.up] == list(range(made[0]))
    assert client.counters["uplinks"] == made[0]


def test_no_token_is_minted_while_the_clock_is_not_set():
    from tether.hal import clock
    from tether.hal.fakes import FakeClock

    fake = FakeClock(2000)  # a board without a battery: 2000-01-01
    clock.set_clock(fake)
    broker = AkenzaBroker()
    client = fast(AkenzaClient(DEV, key=kv.P256_SEC1, tls=False), broker)
    client.ntp_servers = ("127.0.0.1",)  # nothing answers SNTP there
    client.ntp_timeout_ms = 50
    sane = 1796000000  # 2026-11-29
    try:

        async def body():
            tasks = [asyncio.create_task(client.run()), asyncio.create_task(broker.serve())]
            await asyncio.sleep(1.5)
            assert not broker.logins and client.credentials.expires_at is None
            assert client.session.stage == "time"  # waiting for the clock, not connecting
            fake.set_unix(sane)  # the clock is set (SNTP, RTC, the user)
            assert await until(lambda: client.connected, 10000), client.stats()
            await stop(client, tasks)

        run(body(), 20)
    finally:
        clock.set_clock(None)
    assert len(broker.logins) == 1
    c = _claims(broker.logins[0][2])
    assert sane <= c["iat"] <= sane + 15 and c["exp"] == c["iat"] + 1200
