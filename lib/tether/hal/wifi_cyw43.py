"""CYW43 station: Portenta H7 (stm32) and Pico W (rp2).

status() returns the driver's link state. rp2 exports them as network.STAT_*; stm32 does
not, so the CYW43 driver's own link codes are named here (cyw43.h: CYW43_LINK_*).
LINK_NOIP (associated, DHCP not done) is "not connected" like every other port.
"""

from tether.compat import const
from tether.hal.station import Station

_CYW43_LINK_UP = const(3)
_CYW43_LINK_FAIL = const(-1)
_CYW43_LINK_NONET = const(-2)
_CYW43_LINK_BADAUTH = const(-3)


class Cyw43Station(Station):
    kind = "cyw43"

    def _codes(self):
        net = self.network()
        return (
            getattr(net, "STAT_GOT_IP", _CYW43_LINK_UP),
            {
                getattr(net, "STAT_CONNECT_FAIL", _CYW43_LINK_FAIL): "connect_fail",
                getattr(net, "STAT_NO_AP_FOUND", _CYW43_LINK_NONET): "no_ap_found",
                getattr(net, "STAT_WRONG_PASSWORD", _CYW43_LINK_BADAUTH): "wrong_password",
            },
        )

    def _link_up(self, wlan):
        return wlan.status() == self._codes()[0]

    def _failure(self, wlan):
        return self._codes()[1].get(wlan.status())
