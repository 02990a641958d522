"""The one bisection behind every "smallest heap" figure of the benches.

    kb = smallest(lambda kb: run_scenario(kb), lo=32, hi=256, step=4, grow_to=2048)

`ok(n)` runs the scenario with n units of heap and says whether it finished. The answer is
the smallest n that passed, to `step`, found by bisection between `lo` (assumed to fail) and
`hi`. A heap near its limit fragments differently from one run to the next, so the search
is only as good as `ok` is repeatable: callers that see noise try a failure twice inside
`ok` (see `twice`).
"""


def twice(ok):
    """`ok` that counts a pass from either of two tries: a failure at the edge is retried."""
    return lambda n: ok(n) or ok(n)


def smallest(ok, lo, hi, step=1, grow_to=None):
    """Smallest n in (lo, hi] with ok(n), to `step`; None if hi fails.

    grow_to: when hi fails, double it (the failed hi becomes lo) while it stays within
    grow_to, so a figure that grew past the first guess is still found."""
    while not ok(hi):
        if grow_to is None or hi * 2 > grow_to:
            return None
        lo, hi = hi, hi * 2
    while hi - lo > step:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi
