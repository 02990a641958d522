"""The WiFi station behaviour every port shares; the per-port modules say how to read state.

One call to `connect()` is one attempt: full teardown first (disconnect + active(False),
so a half-joined radio never carries state into the next try), then join, then wait for a
link *with an address*: "associated but 0.0.0.0" counts as not connected, because nothing
can be reached without an IP. A failed or timed-out attempt tears down again and raises
OSError; retrying with backoff is `tether.hal.network.bring_up`'s job, not the driver's.
"""

import asyncio

from tether import log
from tether.compat import const, ticks_diff, ticks_ms

_POLL_MS = const(100)
_ETIMEDOUT = const(110)
_ECONNREFUSED = const(111)
NO_IP = "0.0.0.0"

_log = log.getLogger("wifi")


class WifiError(OSError):
    """An attempt failed; `.reason` is the port's own word for why (for the log)."""

    def __init__(self, errno, reason):
        super().__init__(errno, reason)
        self.reason = reason


class Station:
    kind = "?"

    def __init__(self, network_module=None, hostname=None):
        self._net = network_module
        self._wlan = None  # created on first use: constructing it powers the radio on some ports
        self.hostname = hostname

    # -- what subclasses provide -------------------------------------------------------
    def _link_up(self, wlan):
        return wlan.isconnected()

    def _failure(self, wlan):
        """A reason string when the port says the attempt has definitely failed, else None."""
        return None

    def _prepare(self, wlan):
        """Port configuration applied after active(True), before connect()."""

    # -- shared ------------------------------------------------------------------------
    def network(self):
        if self._net is None:
            import network

            self._net = network
        return self._net

    def wlan(self):
        if self._wlan is None:
            net = self.network()
            self._wlan = net.WLAN(net.STA_IF)
        return self._wlan

    def ip(self):
        if self._wlan is None:
            return NO_IP
        try:
            return self._wlan.ifconfig()[0]
        except OSError:
            return NO_IP

    def isconnected(self):
        w = self._wlan
        if w is None:
            return False
        try:
            up = self._link_up(w)
        except OSError:
            return False
        return bool(up) and self.ip() not in (NO_IP, "")

    def ifconfig(self):
        if self._wlan is None:
            return (NO_IP, NO_IP, NO_IP, NO_IP)
        return self._wlan.ifconfig()

    def disconnect(self):
        """Full teardown; safe to call in any state, never raises."""
        w = self._wlan
        if w is None:
            return
        for step in (w.disconnect, lambda: w.active(False)):
            try:
                step()
            except Exception as exc:  # a radio that is already off may complain
                _log.debug("teardown: %r", exc)

    async def connect(self, ssid, password, timeout_ms=15000):
        self.disconnect()
        w = self.wlan()
        w.active(True)
        if self.hostname:
            self._set_hostname(self.hostname)
        self._prepare(w)
        w.connect(ssid, password)
        t0 = ticks_ms()
        while True:
            reason = self._failure(w)
            if reason is not None:
                self.disconnect()
                raise WifiError(_ECONNREFUSED, reason)
            if self.isconnected():
                return self.ifconfig()
            if ticks_diff(ticks_ms(), t0) >= timeout_ms:
                why = "associated, no IP" if self._safe_link(w) else "no link"
                self.disconnect()
                raise WifiError(_ETIMEDOUT, "timeout (%s)" % why)
            await asyncio.sleep(_POLL_MS / 1000)

    def _safe_link(self, w):
        try:
            return bool(self._link_up(w))
        except OSError:
            return False

    def _set_hostname(self, name):
        net = self.network()
        try:
            if hasattr(net, "hostname"):
                net.hostname(name)
        except (OSError, ValueError) as exc:
            _log.warning("hostname not set: %r", exc)
