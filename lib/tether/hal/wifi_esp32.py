"""ESP32 station (esp-idf WiFi through MicroPython's network.WLAN).

status() reports network.STAT_* constants, which are esp-idf reason codes on this port:
compare with the names, never with numbers. `reconnects` is set to 0 so esp-idf does not
retry on its own behind our back: the attempt fails fast with its reason, and the
backoff in `tether.hal.network` is the only retry policy.
"""

from tether.hal.station import Station

# Statuses after which an attempt cannot succeed any more (names as in MicroPython's esp32 port).
_FAILED = (
    "STAT_WRONG_PASSWORD",
    "STAT_NO_AP_FOUND",
    "STAT_NO_AP_FOUND_IN_RSSI_THRESHOLD",
    "STAT_NO_AP_FOUND_IN_AUTHMODE_THRESHOLD",
    "STAT_NO_AP_FOUND_W_COMPATIBLE_SECURITY",
    "STAT_CONNECT_FAIL",
    "STAT_ASSOC_FAIL",
    "STAT_BEACON_TIMEOUT",
    "STAT_HANDSHAKE_TIMEOUT",
)


class Esp32Station(Station):
    kind = "esp32"

    def __init__(self, network_module=None, hostname=None, reconnects=0):
        super().__init__(network_module, hostname)
        self.reconnects = reconnects
        self._failed = None

    def _failed_codes(self):
        if self._failed is None:
            net = self.network()
            codes = {}
            for name in _FAILED:
                code = getattr(net, name, None)
                if code is not None:
                    codes[code] = name[5:].lower()
            self._failed = codes
        return self._failed

    def _prepare(self, wlan):
        try:
            wlan.config(reconnects=self.reconnects)
        except ValueError:  # firmware older than the `reconnects` option: nothing to turn off
            pass

    def _link_up(self, wlan):
        return wlan.status() == self.network().STAT_GOT_IP

    def _failure(self, wlan):
        return self._failed_codes().get(wlan.status())
