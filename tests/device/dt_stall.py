"""tether.stallmeter on both interpreters: it sees a blocked loop and is quiet otherwise."""

import asyncio
import time

from harness import run
from tether.stallmeter import StallMeter


def test_a_blocking_call_shows_up_as_a_stall_in_its_phase():
    async def main():
        m = StallMeter(period_ms=2).start()
        await asyncio.sleep(0.05)  # let the ticker run
        m.phase("blocking")
        time.sleep(0.3)  # blocks the whole loop
        await asyncio.sleep(0.05)
        m.phase("quiet")
        await asyncio.sleep(0.05)
        m.stop()
        return m

    m = run(main())
    assert 290 <= m.longest_ms < 3000, m.longest_ms
    assert m.by_phase["blocking"] >= 290, m.by_phase
    assert m.by_phase["quiet"] < 290, m.by_phase
    assert m.ticks > 10


def test_an_idle_loop_has_no_long_stall():
    async def main():
        m = StallMeter(period_ms=2).start()
        for _ in range(20):
            await asyncio.sleep(0.01)
        m.stop()
        return m

    m = run(main())
    assert m.ticks >= 20, m.ticks
    # Generous: a loaded CI machine may deschedule us, but not for 100 ms every time.
    assert m.longest_ms < 250, m.longest_ms


def test_reset_returns_the_longest_and_starts_over():
    m = StallMeter()
    m.note(30)
    m.note(10)
    assert m.reset() == 30
    assert m.longest_ms == 0


def test_long_gaps_are_kept_with_their_phase():
    m = StallMeter()
    m.phase("tls")
    m.note(20)
    m.note(120)
    assert len(m.events) == 1 and m.events[0][1:] == (120, "tls"), m.events
    for _ in range(20):
        m.note(60)
    assert len(m.events) == 16  # bounded
