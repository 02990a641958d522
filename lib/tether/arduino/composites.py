"""The composite cloud variables (arduino-iot-cloud-py's types): one variable with named
fields, each its own SenML record "{var}:{field}" on the wire (tether.arduino.records).

    Location("home", lat=1.5, lon=2.0)  ->  [{0: "home:lat", 2: 1.5}, {0: "home:lon", 2: 2.0}]
"""

from tether.arduino.records import _BOOL, _FLOAT, _INT, CloudObject, unix_time, utc_fields
from tether.compat import const


class Location(CloudObject):
    _FIELDS = ("lat", "lon")
    _KINDS = (_FLOAT, _FLOAT)


class Color(CloudObject):
    _FIELDS = ("hue", "sat", "bri")
    _KINDS = (_FLOAT, _FLOAT, _FLOAT)


class ColoredLight(CloudObject):
    _FIELDS = ("swi", "hue", "sat", "bri")
    _KINDS = (_BOOL, _FLOAT, _FLOAT, _FLOAT)


class DimmedLight(CloudObject):
    _FIELDS = ("swi", "bri")
    _KINDS = (_BOOL, _FLOAT)


# Schedule `msk` layout (ArduinoIoTCloud CloudSchedule): unit bits 31..30 (s, min, h, day),
# type bits 29..26, repetition 25..0 (fixed delta), weekday bits 6..0 (Sunday = bit 0),
# month (0 = January) bits 15..8, day of the month bits 7..0.
_ONE_SHOT = const(0)
_FIXED_DELTA = const(1)
_WEEKLY = const(2)
_MONTHLY = const(3)
_YEARLY = const(4)
_UNIT_S = (1, 60, 3600, 86400)
_DAY_S = const(86400)


def schedule_active(frm, to, length, msk, now):
    """True when local time `now` (unix s + tz offset) is inside one of the windows.

    The window is [frm, to) (to = 0: no end); inside it the schedule is active for `length`
    seconds at every repetition: every `delta` (fixed delta), or daily at frm's time of day
    on the matching weekdays / day of the month / day of the year.
    """
    if now < frm or (to and now >= to):
        return False
    kind = (msk >> 26) & 0xF
    if kind == _ONE_SHOT:
        return now - frm <= length
    if kind == _FIXED_DELTA:
        delta = _UNIT_S[(msk >> 30) & 3] * (msk & 0x03FFFFFF)
    elif _WEEKLY <= kind <= _YEARLY:
        tm = utc_fields(now)  # (year, month 1-12, mday, h, m, s, wday Mon=0)
        if kind == _WEEKLY and not (msk >> ((tm[6] + 1) % 7)) & 1:
            return False
        if kind >= _MONTHLY and tm[2] != msk & 0xFF:
            return False
        if kind == _YEARLY and tm[1] - 1 != (msk >> 8) & 0xFF:
            return False
        delta = _DAY_S
    else:
        return False
    return delta > 0 and (now - frm) % delta <= length


class Schedule(CloudObject):
    """A time plan set from the dashboard: frm/to (unix s), len (s), msk (repetition).

    on_active(client, value) is called when a window opens; `active` tells whether the
    local time (UTC plus the cloud's tz_offset) is inside one (see schedule_active).
    """

    _FIELDS = ("frm", "to", "len", "msk")
    _KINDS = (_INT, _INT, _INT, _INT)

    def __init__(self, name, on_active=None, **kwargs):
        self.on_active = on_active
        self.active = False
        CloudObject.__init__(self, name, **kwargs)

    @property
    def scheduled(self):
        return True

    def run(self, client):
        CloudObject.run(self, client)
        if not self.initialized:
            return
        now = unix_time() + client.get("tz_offset", 0)
        inside = schedule_active(self.frm, self.to, self.len, self.msk, now)
        if inside and not self.active:
            self.active = True
            if self.on_active is not None:
                self.on_active(client, self.value)
        self.active = inside


class Television(CloudObject):
    _FIELDS = ("swi", "vol", "mut", "pbc", "inp", "cha")
    _KINDS = (_BOOL, _INT, _BOOL, _INT, _INT, _INT)

    PLAYBACK_FASTFORWARD = 0
    PLAYBACK_NEXT = 1
    PLAYBACK_PAUSE = 2
    PLAYBACK_PLAY = 3
    PLAYBACK_PREVIOUS = 4
    PLAYBACK_REWIND = 5
    PLAYBACK_STARTOVER = 6
    PLAYBACK_STOP = 7
    PLAYBACK_NONE = 255


# Television input sources, 0..60, in the cloud's order (INPUT_AUX1 = 0 ... INPUT_XBOX = 60).
_TV_INPUTS = (
    "AUX1 AUX2 AUX3 AUX4 AUX5 AUX6 AUX7 BLUERAY CABLE CD COAX1 COAX2 COMPOSITE1 DVD GAME "
    "HDRADIO HDMI1 HDMI2 HDMI3 HDMI4 HDMI5 HDMI6 HDMI7 HDMI8 HDMI9 HDMI10 HDMIARC INPUT1 "
    "INPUT2 INPUT3 INPUT4 INPUT5 INPUT6 INPUT7 INPUT8 INPUT9 INPUT10 IPOD LINE1 LINE2 LINE3 "
    "LINE4 LINE5 LINE6 LINE7 MEDIAPLAYER OPTICAL1 OPTICAL2 PHONO PLAYSTATION PLAYSTATION3 "
    "PLAYSTATION4 SATELLITE SMARTCAST TUNER TV USBDAC VIDEO1 VIDEO2 VIDEO3 XBOX"
)
for _i, _n in enumerate(_TV_INPUTS.split()):
    setattr(Television, "INPUT_" + _n, _i)
del _i, _n, _TV_INPUTS
