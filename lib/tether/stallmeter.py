"""Measures how long the event loop is blocked: a ticker task that sleeps a few
milliseconds and records the longest gap between its wake-ups beyond the sleep asked for.

    meter = StallMeter(period_ms=2)
    meter.start()
    meter.phase("connect")       # later gaps are also attributed to this phase
    ...
    meter.longest_ms, meter.by_phase   # {"connect": 37, ...}
    meter.stop()

A gap is (time between wake-ups) - period_ms: what some other code held the loop for.
Used in tests and by the soak run; cheap enough to leave running on a board (one task, no
allocation per tick once the phase is set).
"""

import asyncio

from tether.compat import ticks_diff, ticks_ms


async def _sleep_ms(ms):
    if hasattr(asyncio, "sleep_ms"):
        await asyncio.sleep_ms(ms)
    else:
        await asyncio.sleep(ms / 1000)


class StallMeter:
    def __init__(self, period_ms=2, phase_fn=None):
        self.period_ms = period_ms
        # phase_fn() names the phase at each tick; a gap is charged to the phase seen at
        # the tick before it (the one running when the loop got blocked).
        self.phase_fn = phase_fn
        self.longest_ms = 0
        self.ticks = 0
        self.by_phase = {}
        self.log_over_ms = 50  # gaps longer than this are kept in `events` (the last 16)
        self.events = []  # (ticks_ms at wake-up, gap_ms, phase)
        self._phase = None
        self._task = None

    def start(self):
        """Start the ticker on the running loop (call from inside a coroutine)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        return self

    def stop(self):
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def phase(self, name):
        """Attribute later gaps to `name` as well (None: no phase)."""
        self._phase = name
        if name is not None and name not in self.by_phase:
            self.by_phase[name] = 0

    def reset(self):
        """Return the longest gap so far and start over."""
        longest = self.longest_ms
        self.longest_ms = 0
        return longest

    def note(self, gap_ms):
        if gap_ms > self.longest_ms:
            self.longest_ms = gap_ms
        ph = self._phase
        if ph is not None and gap_ms > self.by_phase[ph]:
            self.by_phase[ph] = gap_ms
        if gap_ms > self.log_over_ms:
            self.events.append((ticks_ms(), gap_ms, ph))
            if len(self.events) > 16:
                self.events.pop(0)

    async def _run(self):
        period = self.period_ms
        last = ticks_ms()
        fn = self.phase_fn
        try:
            while True:
                if fn is not None:
                    self.phase(fn())
                await _sleep_ms(period)
                now = ticks_ms()
                gap = ticks_diff(now, last) - period
                last = now
                self.ticks += 1
                if gap > 0:
                    self.note(gap)
        except asyncio.CancelledError:
            pass

    def report(self):
        return {"longest_ms": self.longest_ms, "ticks": self.ticks, "by_phase": self.by_phase}
