"""WiFi drivers and bring-up policy against the fake radio, in each port's dialect."""

import asyncio

from harness import raises, run
from tether.compat import ticks_diff, ticks_ms
from tether.hal.backoff import Backoff
from tether.hal.fakes import FakeNetwork, FakeRadio
from tether.hal.network import bring_up, default_kind, get_network, keep_up, watch_link
from tether.hal.station import WifiError


def _unique():
    import os
    from binascii import hexlify

    return hexlify(os.urandom(6)).decode()  # other runs may share /tmp


def _station(kind, radio, **opts):
    return get_network(kind, FakeNetwork(kind, radio), **opts)


def test_backoff_doubles_from_1s_to_32s_with_jitter():
    b = Backoff()
    ceilings = []
    for _ in range(8):
        c = b.ceiling_ms()
        d = b.next_ms()
        assert c // 2 <= d <= c, (c, d)
        ceilings.append(c)
    assert ceilings == [1000, 2000, 4000, 8000, 16000, 32000, 32000, 32000]
    b.reset()
    assert b.ceiling_ms() == 1000


def test_backoff_jitter_spreads_delays():
    b = Backoff()
    seen = set()
    for _ in range(20):
        b.reset()
        b.next_ms()
        seen.add(b.next_ms())
    assert len(seen) > 5  # a fleet does not retry in lockstep


def test_fails_n_times_then_connects_with_growing_backoff():
    radio = FakeRadio(fail_first=3, assoc_ms=5)
    sta = _station("cyw43", radio)
    log = []

    def on_attempt(n, err, delay):
        log.append((n, err, delay))

    cfg = run(bring_up(sta, "net", "pw", 1000, Backoff(20, 160), 0, on_attempt), 10)
    assert cfg[0] == "10.0.0.2"
    assert sta.isconnected()
    assert radio.attempts == 4
    assert [e is None for _, e, _ in log] == [False, False, False, True]
    delays = [d for _, e, d in log if e is not None]
    for ceiling, d in zip((20, 40, 80), delays):
        assert ceiling // 2 <= d <= ceiling, delays
    # every attempt starts from a torn-down radio (active(False) before each connect)
    assert sta.wlan().deactivations >= 4


def test_gives_up_after_attempts_when_asked():
    radio = FakeRadio(fail_first=10, assoc_ms=5)
    sta = _station("cyw43", radio)
    exc = None
    try:
        run(bring_up(sta, "net", "pw", 500, Backoff(5, 10), 3), 5)
    except OSError as e:
        exc = e
    assert exc is not None and radio.attempts == 3
    assert not sta.isconnected()
    assert not sta.wlan().active()  # torn down after the last failure too


def test_connected_without_ip_counts_as_not_connected():
    for kind in ("esp32", "cyw43", "nina"):
        radio = FakeRadio(no_ip_first=1, assoc_ms=5)
        sta = _station(kind, radio)
        exc = raises(OSError, run, sta.connect("net", "pw", 300), 5)
        assert "no IP" in str(exc) or "no link" in str(exc), (kind, exc)
        cfg = run(sta.connect("net", "pw", 1000), 5)
        assert cfg[0] == "10.0.0.2" and sta.isconnected(), kind


def test_isconnected_false_while_associated_without_address():
    radio = FakeRadio(no_ip_first=5, assoc_ms=0)
    for kind in ("esp32", "nina"):
        net = FakeNetwork(kind, radio)
        sta = get_network(kind, net)
        w = sta.wlan()
        w.active(True)
        w.connect("net", "pw")
        assert w.isconnected()  # the port itself says connected ...
        assert w.ifconfig()[0] == "0.0.0.0"
        assert not sta.isconnected()  # ... Tether does not


def test_esp32_fails_fast_by_status_name_and_disables_driver_reconnects():
    radio = FakeRadio(password="right", assoc_ms=5)
    sta = _station("esp32", radio)
    t0 = ticks_ms()
    exc = raises(WifiError, run, sta.connect("net", "wrong", 5000), 5)
    assert exc.reason == "wrong_password"
    assert ticks_diff(ticks_ms(), t0) < 2000  # by status, not by timeout
    assert sta.wlan().reconnects == 0
    run(sta.connect("net", "right", 1000), 5)
    assert sta.isconnected()


def test_cyw43_reports_missing_access_point():
    radio = FakeRadio(fail_first=1, assoc_ms=5)
    sta = _station("cyw43", radio)
    exc = raises(WifiError, run, sta.connect("net", "pw", 5000), 5)
    assert exc.reason == "no_ap_found"


def test_nina_never_calls_config_with_arguments():
    # the fake NINA raises ValueError("AP required") like the real one if config(...) is used
    radio = FakeRadio(fail_first=1, assoc_ms=5)
    sta = _station("nina", radio, hostname="tether")
    exc = raises(OSError, run, sta.connect("net", "pw", 300), 5)
    assert "timeout" in str(exc)  # NINA has no failure status: the attempt times out
    run(sta.connect("net", "pw", 1000), 5)
    assert sta.isconnected()
    assert raises(ValueError, sta.wlan().config, hostname="x")


def test_link_drop_is_detected_and_recovered():
    radio = FakeRadio(assoc_ms=5)
    sta = _station("cyw43", radio)
    events = []

    async def scenario():
        await bring_up(sta, "net", "pw", 1000)
        task = asyncio.create_task(
            keep_up(
                sta,
                "net",
                "pw",
                500,
                Backoff(10, 40),
                on_down=lambda: events.append("down"),
                on_up=lambda: events.append("up"),
                check_ms=10,
            )
        )
        await asyncio.sleep(0.05)
        radio.set_ap_down(True)
        while "down" not in events:
            await asyncio.sleep(0.01)
        assert not sta.isconnected()
        await asyncio.sleep(0.1)  # a few failed rejoins while the AP is gone
        radio.set_ap_down(False)
        while "up" not in events:
            await asyncio.sleep(0.01)
        assert sta.isconnected()
        task.cancel()

    run(scenario(), 10)
    assert events == ["down", "up"]
    assert radio.attempts >= 3


def test_watch_link_reports_each_loss_once():
    radio = FakeRadio(assoc_ms=5)
    sta = _station("cyw43", radio)
    downs = []

    async def scenario():
        await sta.connect("net", "pw", 1000)
        task = asyncio.create_task(watch_link(sta, lambda: downs.append(1), check_ms=10))
        await asyncio.sleep(0.05)
        radio.drop()
        await asyncio.sleep(0.1)
        assert downs == [1]  # once, not once per check
        await sta.connect("net", "pw", 1000)
        await asyncio.sleep(0.05)
        radio.drop()
        await asyncio.sleep(0.1)
        task.cancel()

    run(scenario(), 5)
    assert downs == [1, 1]


def test_control_file_cuts_and_restores_the_link():
    path = "/tmp/tether-dt-wifi-%s" % _unique()
    radio = FakeRadio(assoc_ms=5, control=path)
    sta = _station("cyw43", radio)
    run(sta.connect("net", "pw", 1000), 5)
    with open(path, "w") as f:
        f.write("drop")

    async def wait_for(state):
        while sta.isconnected() != state:
            await asyncio.sleep(0.02)

    run(wait_for(False), 5)
    with open(path, "w") as f:
        f.write("up")
    run(wait_for(False), 1)  # the drop is final: the station must rejoin
    run(sta.connect("net", "pw", 1000), 5)
    assert sta.isconnected()
    import os

    os.remove(path)


def test_driver_choice():
    assert default_kind() == "fake"  # unix port and CPython
    assert get_network("fake").kind == "cyw43"
    raises(ValueError, get_network, "wiznet")
