"""`make bench` helpers: the error type, the progress log, summaries and the retry loop."""

import sys


class BenchError(Exception):
    pass


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


def summary(values, ndigits=1):
    """{"median", "min", "max", "n"} of a list of numbers (None when empty)."""
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return None
    n = len(vals)
    mid = vals[n // 2] if n % 2 else (vals[n // 2 - 1] + vals[n // 2]) / 2
    return {
        "median": round(mid, ndigits),
        "min": round(vals[0], ndigits),
        "max": round(vals[-1], ndigits),
        "n": n,
    }


def percentile(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    vals = sorted(values)
    k = max(0, min(len(vals) - 1, int(round(p / 100.0 * len(vals) + 0.5)) - 1))
    return vals[k]


def ratio(a, b):
    if a is None or b is None or not b:
        return None
    return round(a / b, 2)


FAILED_ATTEMPTS = []  # what made a run try again, for the report


def retry(fn, good=lambda r: True, attempts=3):
    """fn() until good(result), at most `attempts` times; a run that raised counts as bad.
    Returns the last result (None if the last attempt raised)."""
    r = None
    for i in range(attempts):
        try:
            r = fn()
        except (BenchError, TimeoutError, AssertionError, KeyError) as exc:
            log("attempt %d failed: %s" % (i + 1, str(exc).splitlines()[0]))
            FAILED_ATTEMPTS.append(str(exc).splitlines()[0])
            r = None
            continue
        if good(r):
            return r
    return r
