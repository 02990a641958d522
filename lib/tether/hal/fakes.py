"""Stand-ins for the hardware the unix port lacks: a WiFi radio and an RTC.

They behave like the real thing, failures included, so the firmware's real drivers and
policies run unchanged against them:

- `FakeNetwork(flavour)` is a `network` module: `WLAN(STA_IF)`, `STA_IF`, `hostname()` and,
  per flavour, the port's status dialect: "esp32" (STAT_* names over esp-idf reason codes),
  "cyw43" (the CYW43 driver's link codes, no STAT_* names, as on stm32), "nina" (status()
  is a bool and config(...) with arguments raises ValueError("AP required")).
- `FakeRadio` is the shared air: it refuses the first `fail_first` associations, brings up
  `no_ip_first` more without an address (DHCP failure), drops every link on `drop()`, and
  refuses all joins while `ap_down`. A control file (write "drop" / "up") lets a test cut
  the WiFi of a firmware running in another process.
- `FakeClock` is an RTC that counts from 2000 (esp32, stm32) or 1970 (rp2, unix).
"""

import time

from tether.compat import const, ticks_diff, ticks_ms

_ASSOC_MS = const(150)
_CONTROL_POLL_MS = const(100)

# esp-idf codes as MicroPython's esp32 port exports them (network.STAT_*).
_ESP32_STATS = {
    "STAT_IDLE": 1000,
    "STAT_CONNECTING": 1001,
    "STAT_GOT_IP": 1010,
    "STAT_BEACON_TIMEOUT": 200,
    "STAT_NO_AP_FOUND": 201,
    "STAT_WRONG_PASSWORD": 202,
    "STAT_ASSOC_FAIL": 203,
    "STAT_CONNECT_FAIL": 203,
    "STAT_HANDSHAKE_TIMEOUT": 204,
}
# CYW43 link codes (cyw43.h); stm32 exports no names for them.
_LINK_DOWN, _LINK_JOIN, _LINK_NOIP, _LINK_UP = 0, 1, 2, 3
_LINK_FAIL, _LINK_NONET, _LINK_BADAUTH = -1, -2, -3

# Outcomes of one association attempt.
_UP, _NOIP, _NOAP, _BADAUTH = "up", "noip", "noap", "badauth"


class FakeRadio:
    def __init__(
        self,
        fail_first=0,
        no_ip_first=0,
        ssid=None,
        password=None,
        ip="10.0.0.2",
        assoc_ms=_ASSOC_MS,
        control=None,
    ):
        self.fail_first = fail_first
        self.no_ip_first = no_ip_first
        self.ssid = ssid  # None accepts any network name
        self.password = password  # None accepts any key
        self.ip = ip
        self.assoc_ms = assoc_ms
        self.control = control
        self.ap_down = False
        self.attempts = 0
        self.drops = 0
        self.generation = 0  # bumped by drop(): links joined before it are gone
        self._polled = ticks_ms()

    def drop(self):
        """The access point vanishes for everyone associated now (they may rejoin)."""
        self.generation += 1
        self.drops += 1

    def set_ap_down(self, down):
        if down and not self.ap_down:
            self.drop()
        self.ap_down = down

    def poll_control(self, force=False):
        if self.control is None:
            return
        if not force and ticks_diff(ticks_ms(), self._polled) < _CONTROL_POLL_MS:
            return
        self._polled = ticks_ms()
        try:
            with open(self.control) as f:
                cmd = f.read().strip()
        except OSError:
            return
        if cmd == "drop":
            self.set_ap_down(True)
        elif cmd == "up":
            self.set_ap_down(False)

    def _outcome(self, ssid, password):
        self.poll_control(True)  # a join is rare: always see the latest command
        self.attempts += 1
        if self.ap_down or (self.ssid is not None and ssid != self.ssid):
            return _NOAP
        if self.attempts <= self.fail_first:
            return _NOAP
        if self.password is not None and password != self.password:
            return _BADAUTH
        if self.attempts <= self.fail_first + self.no_ip_first:
            return _NOIP
        return _UP


class FakeWLAN:
    def __init__(self, net, itf):
        self._net = net
        self._radio = net.radio
        self._itf = itf
        self._active = False
        self._outcome = None  # None: not joining
        self._t0 = 0
        self._gen = 0
        self.reconnects = -1
        self.connects = 0
        self.deactivations = 0

    # The link state is computed from the clock when asked, like polling a real driver.
    def _state(self):
        self._radio.poll_control()
        if not self._active or self._outcome is None:
            return "down"
        if ticks_diff(ticks_ms(), self._t0) < self._radio.assoc_ms:
            return "joining"
        if self._outcome in (_UP, _NOIP) and self._gen != self._radio.generation:
            return "lost"
        return self._outcome

    def active(self, flag=None):
        if flag is None:
            return self._active
        self._active = bool(flag)
        if not flag:
            self.deactivations += 1
            self._outcome = None

    def connect(self, ssid=None, key=None, **kw):
        if not self._active:
            raise OSError("WiFi Not Started")  # the esp32 wording; every port refuses
        self.connects += 1
        self._outcome = self._radio._outcome(ssid, key)
        self._t0 = ticks_ms()
        self._gen = self._radio.generation

    def disconnect(self):
        self._outcome = None

    def isconnected(self):
        st = self._state()
        if self._net.flavour == "cyw43":
            return st == _UP  # cyw43 counts LINK_UP only
        return st in (_UP, _NOIP)  # esp32 / nina: associated, address or not

    def ifconfig(self, *args):
        ip = self._radio.ip if self._state() == _UP else "0.0.0.0"
        return (ip, "255.255.255.0", "10.0.0.1", "10.0.0.1")

    def ipconfig(self, *args):
        return self.ifconfig()

    def config(self, *args, **kw):
        if self._net.flavour == "nina" and (args or kw):
            raise ValueError("AP required")
        if "reconnects" in kw:
            self.reconnects = kw["reconnects"]
        return None

    def status(self, *args):
        st = self._state()
        flavour = self._net.flavour
        if args:
            if args[0] == "rssi":
                return -50
            raise ValueError("unknown status param")
        if flavour == "nina":
            return st in (_UP, _NOIP)
        if flavour == "esp32":
            table = {
                "down": "STAT_IDLE",
                "joining": "STAT_CONNECTING",
                _NOIP: "STAT_CONNECTING",  # esp32 reports CONNECTING until it has an IP
                _UP: "STAT_GOT_IP",
                _NOAP: "STAT_NO_AP_FOUND",
                _BADAUTH: "STAT_WRONG_PASSWORD",
                "lost": "STAT_BEACON_TIMEOUT",
            }
            return _ESP32_STATS[table[st]]
        return {
            "down": _LINK_DOWN,
            "joining": _LINK_JOIN,
            _NOIP: _LINK_NOIP,
            _UP: _LINK_UP,
            _NOAP: _LINK_NONET,
            _BADAUTH: _LINK_BADAUTH,
            "lost": _LINK_DOWN,
        }[st]


class FakeNetwork:
    """A `network` module for one radio; pass it as `network_module` to a driver."""

    STA_IF = 0
    AP_IF = 1

    def __init__(self, flavour="cyw43", radio=None):
        if flavour not in ("esp32", "cyw43", "nina"):
            raise ValueError("flavour: esp32, cyw43 or nina")
        self.flavour = flavour
        self.radio = radio or FakeRadio()
        self._host = "mpy"
        self._sta = None
        if flavour == "esp32":
            for name, code in _ESP32_STATS.items():
                setattr(self, name, code)

    def WLAN(self, itf=0):
        # Like the ports: one object per interface, the same one every time.
        if itf != self.STA_IF:
            raise ValueError("only STA_IF is simulated")
        if self._sta is None:
            self._sta = FakeWLAN(self, itf)
        return self._sta

    def hostname(self, name=None):
        if name is None:
            return self._host
        self._host = name


_Y2K = const(946684800)  # 2000-01-01T00:00:00Z in Unix seconds


class FakeClock:
    """An RTC whose epoch is 2000 (esp32, stm32) or 1970 (rp2, unix), running from `unix_s`.

    Starts where a board starts after power-up without a battery: at its epoch (not sane).
    """

    def __init__(self, epoch_year=2000, unix_s=None):
        if epoch_year not in (1970, 2000):
            raise ValueError("epoch_year: 1970 or 2000")
        self.offset = _Y2K if epoch_year == 2000 else 0
        self._unix = self.offset if unix_s is None else unix_s
        self._t0 = ticks_ms()
        self.sets = 0

    def time(self):
        """Seconds since the port's epoch, as time.time() on that port."""
        return self._unix + ticks_diff(ticks_ms(), self._t0) // 1000 - self.offset

    def gmtime(self, secs=None):
        if secs is None:
            secs = self.time()
        return time.gmtime(secs + self.offset)

    def set_unix(self, unix_s):
        """What machine.RTC().datetime(...) does on a board, in Unix seconds."""
        self._unix = int(unix_s)
        self._t0 = ticks_ms()
        self.sets += 1
