"""The watchdog, and the guard that feeds it only while the connection chain makes progress.

A hardware watchdog fed by a timer proves only that the loop runs. Tether feeds it from a
task that checks for *progress* (a WiFi attempt finished, the clock was set, the cloud
connected or exchanged a message): when nothing has progressed for `stall_ms`, feeding
stops and the watchdog resets the board. The hardware timeout stays short (the RP2040
caps it at 8.3 s: make_wdt returns a watchdog that knows the timeout it really got, and
the Guard feeds at a quarter of that); the stall window is what the application tunes.

On the unix port `FakeWDT` does what the hardware does: when not fed in time it "resets"
by calling `on_reset` (the firmware exits the process with status 3, so a supervisor or a
test sees the reset).
"""

import asyncio
import sys

from tether import log
from tether.compat import const, ticks_add, ticks_diff, ticks_ms

_RP2_MAX_MS = const(8300)
_log = log.getLogger("wdt")


class FakeWDT:
    armed = 0  # FakeWDTs started in this process: a test sees whether one ever was

    def __init__(self, timeout=5000, on_reset=None):
        self.timeout = timeout
        self.timeout_ms = timeout
        self.on_reset = on_reset
        self.feeds = 0
        self.expired = False
        self._fed = ticks_ms()
        FakeWDT.armed += 1

    def feed(self):
        self.check()
        self.feeds += 1
        self._fed = ticks_ms()

    def check(self):
        """The hardware's timer, polled: fires once when the deadline has passed."""
        if not self.expired and ticks_diff(ticks_ms(), self._fed) > self.timeout:
            self.expired = True
            _log.error("watchdog expired: reset")
            if self.on_reset:
                self.on_reset()


class HardwareWDT:
    """machine.WDT plus the timeout the hardware really got (a machine.WDT takes no
    attributes): the Guard paces its feeding on this, not on what the settings asked."""

    def __init__(self, wdt, timeout_ms):
        self.wdt = wdt
        self.timeout_ms = timeout_ms

    def feed(self):
        self.wdt.feed()


def hardware_timeout_ms(timeout_ms, platform=None):
    """The timeout a port's watchdog can hold: the RP2040 caps it at 8.3 s."""
    if (platform or sys.platform) == "rp2" and timeout_ms > _RP2_MAX_MS:
        return _RP2_MAX_MS
    return timeout_ms


def make_wdt(timeout_ms, on_reset=None, wdt_class=None, platform=None):
    """A started watchdog whose `timeout_ms` is the real one: machine.WDT on a board (it
    cannot be stopped once started), FakeWDT elsewhere. `wdt_class`/`platform` stand in for
    machine.WDT and sys.platform (tests)."""
    if wdt_class is None:
        try:
            from machine import WDT as wdt_class
        except ImportError:
            return FakeWDT(timeout_ms, on_reset)
    ms = hardware_timeout_ms(timeout_ms, platform)
    if ms != timeout_ms:
        _log.warning("watchdog_ms %d is over this port's limit: %d ms", timeout_ms, ms)
    return HardwareWDT(wdt_class(timeout=ms), ms)


class Guard:
    """Feeds `wdt` every timeout/4 while progress() was called within `stall_ms`.

    The timeout is the watchdog's own `timeout_ms` when it has one (make_wdt's do), as the
    hardware may hold less than was asked; `timeout_ms` only ever lowers it."""

    def __init__(self, wdt, timeout_ms=None, stall_ms=600000):
        self.wdt = wdt
        real = getattr(wdt, "timeout_ms", None)
        if real is None or (timeout_ms is not None and timeout_ms < real):
            real = timeout_ms
        if real is None:
            raise ValueError("Guard: the watchdog's timeout is unknown")
        self.timeout_ms = real
        self.stall_ms = stall_ms
        self._last = ticks_ms()
        self.stalled = False

    def progress(self, what=None, quiet_ms=0):
        """Something moved forward. `quiet_ms`: a deliberate silence follows (a reconnect
        backoff), so the next progress is due `quiet_ms` later than usual."""
        self._last = ticks_add(ticks_ms(), quiet_ms)
        if self.stalled:
            _log.info("progress again (%s)", what)
            self.stalled = False

    def healthy(self):
        return ticks_diff(ticks_ms(), self._last) < self.stall_ms

    async def run(self):
        period = max(self.timeout_ms // 4, 10) / 1000
        while True:
            if self.healthy():
                self.wdt.feed()
            elif not self.stalled:
                self.stalled = True
                _log.error("no progress for %d ms: letting the watchdog reset", self.stall_ms)
            check = getattr(self.wdt, "check", None)
            if check:
                check()
            await asyncio.sleep(period)
