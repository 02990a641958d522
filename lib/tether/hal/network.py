"""WiFi: pick the port's driver, bring the link up with backoff, keep it up.

    sta = get_network("auto")
    await bring_up(sta, ssid, password)          # retries 1 s -> 32 s with jitter
    asyncio.create_task(keep_up(sta, ssid, password, on_down=..., on_up=...))
    # or, when a supervisor owns reconnecting: asyncio.create_task(watch_link(sta, on_down))

Drivers (`tether.hal.wifi_*`) are imported only when chosen, so a board carries one.
"""

import asyncio
import sys

from tether import log
from tether.compat import const
from tether.hal.backoff import Backoff

_CHECK_MS = const(1000)
_log = log.getLogger("wifi")

KINDS = ("esp32", "cyw43", "nina", "fake")


def default_kind():
    """The WiFi driver of the running port: esp32, cyw43 (stm32, Pico W), nina, or fake."""
    plat = sys.platform
    if plat == "esp32":
        return "esp32"
    if plat == "rp2":
        machine = getattr(sys.implementation, "_machine", "")
        return "nina" if "Nano RP2040" in machine else "cyw43"
    if plat in ("stm32", "pyboard"):
        return "cyw43"
    return "fake"


def get_network(kind="auto", network_module=None, **opts):
    """A station driver. `network_module` replaces `import network` (fakes, tests)."""
    if kind in (None, "auto"):
        kind = default_kind()
    if kind == "esp32":
        from tether.hal.wifi_esp32 import Esp32Station

        return Esp32Station(network_module, **opts)
    if kind == "cyw43":
        from tether.hal.wifi_cyw43 import Cyw43Station

        return Cyw43Station(network_module, **opts)
    if kind == "nina":
        from tether.hal.wifi_nina import NinaStation

        return NinaStation(network_module, **opts)
    if kind == "fake":
        # The fake radio speaks the CYW43 dialect, so the fake exercises a real driver.
        from tether.hal.fakes import FakeNetwork
        from tether.hal.wifi_cyw43 import Cyw43Station

        if network_module is None:
            network_module = FakeNetwork("cyw43")
        return Cyw43Station(network_module, **opts)
    raise ValueError("unknown wifi driver %r (one of %s)" % (kind, ", ".join(KINDS)))


async def bring_up(
    station, ssid, password, timeout_ms=15000, backoff=None, attempts=0, on_attempt=None
):
    """Join `ssid`, retrying with exponential backoff and jitter until it works.

    `attempts` = 0 retries forever; otherwise OSError after that many failures.
    `on_attempt(n, error_or_None, delay_ms)` is called after each attempt (the watchdog
    guard counts attempts as progress; tests record the delays).
    """
    if backoff is None:
        backoff = Backoff()
    else:
        backoff.reset()
    n = 0
    _log.info("joining %r", ssid)
    while True:
        n += 1
        try:
            cfg = await station.connect(ssid, password, timeout_ms)
        except OSError as exc:
            delay = backoff.next_ms()
            _log.warning("attempt %d failed: %s; next in %d ms", n, _reason(exc), delay)
            if on_attempt:
                on_attempt(n, exc, delay)
            if attempts and n >= attempts:
                raise
            await asyncio.sleep(delay / 1000)
            continue
        _log.info("up after %d attempt(s), ip %s", n, cfg[0])
        if on_attempt:
            on_attempt(n, None, 0)
        return cfg


async def keep_up(
    station,
    ssid,
    password,
    timeout_ms=15000,
    backoff=None,
    on_down=None,
    on_up=None,
    on_attempt=None,
    check_ms=_CHECK_MS,
):
    """Watch the link forever; on loss tear it down, call on_down, bring it back, on_up."""
    while True:
        await asyncio.sleep(check_ms / 1000)
        if station.isconnected():
            continue
        _log.warning("link lost")
        station.disconnect()
        if on_down:
            on_down()
        await bring_up(station, ssid, password, timeout_ms, backoff, 0, on_attempt)
        if on_up:
            on_up()


async def watch_link(station, on_down, check_ms=_CHECK_MS):
    """Call on_down() once each time the link goes away; bringing it back is the caller's
    job (the firmware's session does it as its "wifi" stage, with its own backoff)."""
    was_up = station.isconnected()
    while True:
        await asyncio.sleep(check_ms / 1000)
        up = station.isconnected()
        if was_up and not up:
            _log.warning("link lost")
            on_down()
        was_up = up


def _reason(exc):
    return getattr(exc, "reason", None) or repr(exc)
