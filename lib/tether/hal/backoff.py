"""Exponential backoff with jitter, shared by every reconnect path (WiFi, SNTP, cloud).

Delays double from `min_ms` to `max_ms` (1 s -> 32 s by default); each one is drawn
uniformly from [delay/2, delay] so a fleet that lost the same access point does not
come back in lockstep.
"""

from tether.compat import const

_MIN_MS = const(1000)
_MAX_MS = const(32000)


def _random_below(n):
    # `random` exists on every port Tether targets but its extras do not; getrandbits does.
    try:
        import random

        return random.getrandbits(16) * n // 65536
    except (ImportError, AttributeError):
        import os

        b = os.urandom(2)
        return (b[0] << 8 | b[1]) * n // 65536


class Backoff:
    def __init__(self, min_ms=_MIN_MS, max_ms=_MAX_MS):
        self.min_ms = min_ms
        self.max_ms = max_ms
        self.attempt = 0

    def reset(self):
        self.attempt = 0

    def ceiling_ms(self):
        """The un-jittered delay of the next attempt."""
        d = self.min_ms << min(self.attempt, 16)
        return d if d < self.max_ms else self.max_ms

    def next_ms(self):
        d = self.ceiling_ms()
        self.attempt += 1
        half = d // 2
        return half + _random_below(d - half + 1)
