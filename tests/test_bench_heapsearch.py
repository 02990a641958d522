"""bench.heapsearch: the bisection every smallest-heap figure of the benches uses."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.heapsearch import smallest, twice  # noqa: E402

pytestmark = pytest.mark.timeout(10)


def recorder(threshold):
    tried = []

    def ok(n):
        tried.append(n)
        return n >= threshold

    return ok, tried


@pytest.mark.parametrize("threshold", [33, 100, 137, 255, 256])
def test_finds_the_threshold_to_the_step(threshold):
    ok, tried = recorder(threshold)
    kb = smallest(ok, 32, 256, step=4)
    assert threshold <= kb < threshold + 4
    assert len(tried) <= 1 + 6  # hi, then log2(224 / 4) bisections rounded up


def test_step_one_is_exact():
    ok, _ = recorder(77)
    assert smallest(ok, 2, 256) == 77


def test_a_failing_upper_bound_gives_none_without_growth():
    ok, tried = recorder(300)
    assert smallest(ok, 32, 256, step=4) is None
    assert tried == [256]


def test_upper_bound_grows_by_doubling_within_the_limit():
    ok, tried = recorder(700)
    kb = smallest(ok, 32, 256, step=4, grow_to=2048)
    assert 700 <= kb < 704
    assert tried[:3] == [256, 512, 1024]  # 512 failed and became the lower bound
    assert all(512 < n <= 1024 for n in tried[3:])


def test_growth_stops_at_the_limit():
    ok, tried = recorder(5000)
    assert smallest(ok, 32, 512, step=4, grow_to=4096) is None
    assert tried == [512, 1024, 2048, 4096]


def test_twice_retries_a_failure_once():
    answers = iter([False, True, False, False])
    ok = twice(lambda n: next(answers))
    assert ok(1) is True  # the second try passed
    assert ok(1) is False  # both tries failed
