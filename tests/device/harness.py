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
