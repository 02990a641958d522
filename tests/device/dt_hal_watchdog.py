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


class _BoardWDT:
    """Stands in for machine.WDT: records the timeout the 'hardware' was started with."""

    started = []

    def __init__(self, timeout):
        _BoardWDT.started.append(timeout)
        self.feeds = 0

    def feed(self):
        self.feeds += 1


def test_make_wdt_on_rp2_knows_the_capped_timeout():
    _BoardWDT.started = []
    w = make_wdt(30000, wdt_class=_BoardWDT, platform="rp2")
    assert _BoardWDT.started == [8300] and w.timeout_ms == 8300
    w.feed()
    assert w.wdt.feeds == 1
    w = make_wdt(30000, wdt_class=_BoardWDT, platform="esp32")
    assert _BoardWDT.started == [8300, 30000] and w.timeout_ms == 30000


def test_guard_paces_on_the_timeout_the_hardware_got():
    # The settings ask 30 s, the hardware holds 8.3 s: feeding every 7.5 s would leave
    # 0.8 s; the guard must feed every 8300 // 4 ms.
    w = make_wdt(30000, wdt_class=_BoardWDT, platform="rp2")
    assert Guard(w, 30000, stall_ms=600000).timeout_ms == 8300
    assert Guard(w, 4000, stall_ms=600000).timeout_ms == 4000  # asking less still counts


def test_guard_feeds_a_capped_fake_in_time():
    # Scaled down: a watchdog that really holds 80 ms, a guard told 1000 ms. Paced on
    # 1000 ms it would feed every 250 ms and the watchdog would fire.
    resets = []
    w = FakeWDT(80, on_reset=lambda: resets.append(1))
    g = Guard(w, 1000, stall_ms=10000)

    async def go():
        t = asyncio.create_task(g.run())
        await asyncio.sleep(0.4)
        t.cancel()

    run(go(), 5)
    assert not resets and w.feeds >= 10, (resets, w.feeds)


def test_fake_wdt_counts_that_it_was_armed():
    before = FakeWDT.armed
    make_wdt(1000)
    assert FakeWDT.armed == before + 1
