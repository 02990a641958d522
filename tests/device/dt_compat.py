"""The platform layer behaves the same on both interpreters."""

from tether import compat, log
from tether.compat import ticks_add, ticks_diff, ticks_ms


def test_ticks_measure_a_sleep():
    import time

    t0 = ticks_ms()
    time.sleep(0.02)
    elapsed = ticks_diff(ticks_ms(), t0)
    assert 15 <= elapsed < 2000, elapsed


def test_ticks_add_then_diff_round_trips():
    t0 = ticks_ms()
    assert ticks_diff(ticks_add(t0, 1500), t0) == 1500
    assert ticks_diff(ticks_add(t0, -10), t0) == -10


def test_logger_formats_only_enabled_levels():
    class Sink:
        def __init__(self):
            self.text = ""

        def write(self, s):
            self.text += s

    sink = Sink()
    log.basicConfig(level=log.INFO, stream=sink)
    try:
        lg = log.getLogger("t")
        lg.debug("hidden %d", 1)
        lg.info("shown %d ms", 42)
    finally:
        log.basicConfig()
    assert sink.text == "INFO:t:shown 42 ms\n", sink.text


def test_const_returns_its_value():
    assert compat.const(7) == 7
