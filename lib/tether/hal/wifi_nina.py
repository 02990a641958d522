"""NINA-W102 station (Nano RP2040 Connect, the u-blox module behind SPI).

The NINA driver differs from the others on purpose-relevant points:
- status() with no argument returns a bool (connected or not), not a state code, so no
  failure reason is available: an attempt ends by success or by timeout;
- config(...) with arguments raises ValueError("AP required") on a station, so this driver
  never calls it (no hostname, no reconnects setting);
- associated-without-address shows as isconnected() with ifconfig()[0] == "0.0.0.0".
"""

from tether.hal.station import Station


class NinaStation(Station):
    kind = "nina"

    def __init__(self, network_module=None, hostname=None):
        # A hostname cannot be set through NINA's config(); keep it out of the way.
        super().__init__(network_module, None)

    def _link_up(self, wlan):
        return wlan.isconnected()
