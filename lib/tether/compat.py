"""Platform differences between MicroPython and CPython, gathered in one place.

Every timeout in Tether is computed with ticks_ms()/ticks_diff()/ticks_add(), never
with wall-clock time, so a clock step (SNTP sync, RTC set) cannot fire or stall one.
"""

import sys

MICROPYTHON = sys.implementation.name == "micropython"

if MICROPYTHON:
    from time import ticks_add, ticks_diff, ticks_ms

    from micropython import const

    def print_exception(exc, file=sys.stdout):
        sys.print_exception(exc, file)

else:
    import time as _time
    import traceback as _traceback

    def const(value):
        return value

    # CPython has no wrapping tick counter; a monotonic millisecond count that never
    # wraps behaves identically for every use of ticks_diff/ticks_add in Tether.
    _T0 = _time.monotonic_ns()

    def ticks_ms():
        return (_time.monotonic_ns() - _T0) // 1_000_000

    def ticks_add(ticks, delta):
        return ticks + delta

    def ticks_diff(new, old):
        return new - old

    def print_exception(exc, file=sys.stdout):
        _traceback.print_exception(type(exc), exc, exc.__traceback__, file=file)


__all__ = ["MICROPYTHON", "const", "ticks_ms", "ticks_add", "ticks_diff", "print_exception"]


def unload_since(before):
    """Drop the tether modules imported since `before` (a list of sys.modules names) again:
    on a board, what only one step needed (building a TLS context, pairing) is freed before
    the connection needs the RAM. Objects built meanwhile keep what they use alive."""
    for name in list(sys.modules):
        if name.startswith("tether.") and name not in before:
            unload(name)


def unload(name):
    """Forget module `name` (and its attribute on the parent package): the next import
    loads it again. What still uses its functions or classes keeps those alive."""
    sys.modules.pop(name, None)
    i = name.rfind(".")
    try:
        delattr(sys.modules[name[:i]], name[i + 1 :])
    except (AttributeError, KeyError):
        pass


def build_once(fn, *args):
    """fn(*args) for something built once; on MicroPython the tether modules it imported
    are dropped again (unload_since). CPython keeps them: RAM is not short there."""
    if not MICROPYTHON:
        return fn(*args)
    before = list(sys.modules)
    out = fn(*args)
    unload_since(before)
    return out
