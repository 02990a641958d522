"""Watchdog: the fake resets like the hardware; the guard feeds only on progress."""

import asyncio

from harness import run
from tether.hal.watchdog import FakeWDT, Guard, make_wdt


def test_fake_wdt_resets_when_not_fed():
    resets = []
    w = FakeWDT(50, on_reset=lambda: resets.append(1))

    async def go():
        for _ in range(5):
            await asyncio.sleep(0.02)
            w.feed()
        assert not resets
        await asyncio.sleep(0.1)
        w.check()

    run(go(), 5)
    assert resets == [1] and w.expired


def test_make_wdt_is_fake_without_machine_wdt():
    assert isinstance(make_wdt(1000), FakeWDT)


def test_guard_feeds_while_progress_then_lets_it_reset():
    resets = []
    w = FakeWDT(80, on_reset=lambda: resets.append(1))
    g = Guard(w, 80, stall_ms=200)

    async def go():
        t = asyncio.create_task(g.run())
        for _ in range(10):  # 300 ms of steady progress: never expires
            g.progress("tick")
            await asyncio.sleep(0.03)
        assert not resets and not g.stalled
        await asyncio.sleep(0.5)  # no progress: feeding stops, the watchdog fires
        t.cancel()

    run(go(), 5)
    assert g.stalled and resets == [1]


def test_guard_allows_an_announced_quiet_window():
    # A reconnect backoff announces its wait: no reset during it, a reset once it is over.
    resets = []
    w = FakeWDT(80, on_reset=lambda: resets.append(1))
    g = Guard(w, 80, stall_ms=100)

    async def go():
        t = asyncio.create_task(g.run())
        g.progress("backoff", 300)  # quiet for 300 ms, more than stall_ms
        await asyncio.sleep(0.3)
        assert not resets and not g.stalled
        await asyncio.sleep(0.4)  # past the window and the stall limit: it fires
        t.cancel()

    run(go(), 5)
    assert g.stalled and resets == [1]
