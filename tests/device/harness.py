"""Helpers shared by device tests (tests/device/dt_*.py).

Device tests are written in the subset of Python that both MicroPython and CPython run:
pytest runs every `test_*` function of a `dt_*.py` file twice, once on CPython in-process
and once on the MicroPython unix port (see tests/conftest.py). No pytest import here.
"""

import asyncio


def run(coro, timeout_s=10):
    """Run one coroutine to completion on a fresh loop; a test can never hang."""

    async def bounded():
        return await asyncio.wait_for(coro, timeout_s)

    return asyncio.run(bounded())


def raises(exc_type, fn, *args, **kwargs):
    """Call fn and return the exception it raised; fail unless it is an exc_type."""
    try:
        fn(*args, **kwargs)
    except exc_type as exc:
        return exc
    raise AssertionError("%s did not raise %s" % (getattr(fn, "__name__", fn), exc_type.__name__))


class Rng:
    """xorshift32: deterministic and the same on both interpreters (their `random` differ),
    so a case that fails on one replays on the other."""

    def __init__(self, seed):
        self.s = seed or 1

    def next(self):
        s = self.s
        s ^= (s << 13) & 0xFFFFFFFF
        s ^= s >> 17
        s ^= (s << 5) & 0xFFFFFFFF
        self.s = s
        return s

    def below(self, n):
        return self.next() % n

    def bytes(self, n):
        return bytes(self.next() & 0xFF for _ in range(n))

    def pick(self, seq):
        return seq[self.below(len(seq))]
