"""Cloud variables: scalars, the composite types and Task (the arduino-iot-cloud-py API).

A variable keeps two counters instead of a "changed" flag: `_gen` grows on every local
change and `_acked` is the generation the cloud has acknowledged (PUBACK). The variable is
dirty while they differ, so a value whose publish failed, or that changed again while its
publish was in flight, is simply sent again; nothing is lost across a reconnect.

Composite types (Location, Color, ...) are one variable with named fields. On the wire
each field is its own SenML record named "{var}:{field}", and all fields are always sent
together because the cloud has no partial-object update:

    Location("home", lat=1.5, lon=2.0)  ->  [{0: "home:lat", 2: 1.5}, {0: "home:lon", 2: 2.0}]
"""

from tether.compat import const

# Kinds of value a variable can hold; the cloud and the user may not change a kind.
_BOOL = "b"
_NUM = "n"
_INT = "i"  # composite fields that hold integers (Schedule, Television)
_FLOAT = "f"  # composite fields that hold floats (Location, Color, ...)
_STR = "s"


def unix_time():
    """Seconds since 1970 on every port: tether.hal.clock's, so the client, the firmware
    and a test's FakeClock share one clock and one epoch. Imported on first use, so a
    client without time-based variables does not load it."""
    from tether.hal import clock

    return clock.unix_time()


def utc_fields(unix_s):
    """time.gmtime() fields of Unix seconds, whatever the port's epoch."""
    from tether.hal import clock

    c = clock.get_clock()
    return c.gmtime(int(unix_s) - c.offset)


def kind_of(value):
    t = type(value)
    if t is bool:
        return _BOOL
    if t is int or t is float:
        return _NUM
    if t is str:
        return _STR
    return None


def coerce(name, old, new, want=None):
    """Return `new` converted for a variable holding `old`, or raise TypeError.

    `want` is the fixed kind of a composite field (_BOOL, _INT, _FLOAT), None for a scalar,
    whose kind is set by its first value. The cloud sends 1 for 1.0 (its float/int quirk),
    so an int becomes a float where a float is expected, and an integral float an int.
    """
    k = kind_of(new)
    if want == _BOOL or (want is None and type(old) is bool):
        if k == _BOOL:
            return new
    elif want == _FLOAT or (want is None and type(old) is float):
        if k == _NUM:
            return float(new)
    elif want == _INT or (want is None and type(old) is int):
        if type(new) is int:
            return new
        if type(new) is float and new == new and new not in (_INF, -_INF) and new == int(new):
            return int(new)
    elif want is None and old is None:
        if k is not None:
            return new
    elif k == _STR and type(old) is str:
        return new
    raise TypeError("%s: %s value not accepted here" % (name, type(new).__name__))


_INF = float("inf")


class CloudObject:
    """One cloud variable: a scalar, or (in subclasses) a composite with named fields.

    on_read(client) -> value is called every `interval` seconds and its result becomes
    the value (device -> cloud); on_write(client, value) is called when the cloud writes
    (cloud -> device; composites pass the object itself); on_run(client, args) is called
    every `interval` seconds. `backoff` multiplies the interval after each run (max 5 s).
    """

    _FIELDS = ()  # composite field names, in wire order
    _KINDS = ()  # composite field kinds, same order
    _TASK = False

    def __init__(
        self,
        name,
        value=None,
        on_read=None,
        on_write=None,
        on_run=None,
        interval=1.0,
        backoff=None,
        args=None,
        **fields,
    ):
        if not isinstance(name, str) or not name or ":" in name:
            raise ValueError("a variable name is a non-empty str without ':'")
        self.name = name
        self.on_read = on_read
        self.on_write = on_write
        self.on_run = on_run
        self.interval = interval
        self.backoff = backoff
        self.args = args
        self._notify = None  # set by the client: wakes the pusher after a local change
        self._gen = 0
        self._acked = 0
        if self._FIELDS:
            self._vals = {}
            for f in self._FIELDS:
                self._vals[f] = None
            for f in fields:
                if f not in self._vals:
                    raise TypeError("%s got an unexpected keyword argument '%s'" % (name, f))
                self.set_field(f, fields[f])
            if value is not None:
                self.value = value  # a dict of fields, like the setter takes
        else:
            for f in fields:
                raise TypeError("%s got an unexpected keyword argument '%s'" % (name, f))
            self._value = None
            if value is not None:
                self.value = value

    # -- values -----------------------------------------------------------------------

    @property
    def value(self):
        if self._FIELDS:
            return dict(self._vals)
        return self._value

    @value.setter
    def value(self, value):
        if self._FIELDS:
            if not isinstance(value, dict):
                raise TypeError("%s is a composite: assign a dict of fields" % self.name)
            for f in value:
                if f not in self._vals:
                    raise TypeError("%s has no field '%s'" % (self.name, f))
                self.set_field(f, value[f])
            return
        if value is None:
            self._value = None
            return
        value = coerce(self.name, self._value, value)
        if self._value is None or type(value) is not type(self._value) or value != self._value:
            self._value = value
            self._changed()

    def set_field(self, field, value):
        kind = self._KINDS[self._FIELDS.index(field)]
        if value is not None:
            value = coerce(self.name + ":" + field, None, value, kind)
        old = self._vals[field]
        if value is None or value != old or type(value) is not type(old):
            self._vals[field] = value
            if value is not None:
                self._changed()

    def _changed(self):
        self._gen += 1
        if self._notify is not None:
            self._notify()

    def __getattr__(self, attr):
        # Only called when normal lookup fails: composite fields read as attributes.
        fields = type(self)._FIELDS
        if attr in fields:
            return self._vals[attr]
        raise AttributeError("'%s' object has no attribute '%s'" % (type(self).__name__, attr))

    def __setattr__(self, attr, value):
        if attr in type(self)._FIELDS:
            self.set_field(attr, value)
        else:
            object.__setattr__(self, attr, value)

    def __repr__(self):
        return repr(self.value)

    def __contains__(self, field):
        return field in self._FIELDS

    @property
    def initialized(self):
        if self._TASK:
            return True
        if self._FIELDS:
            for v in self._vals.values():
                if v is None:
                    return False
            return True
        return self._value is not None

    @property
    def dirty(self):
        return self._gen != self._acked and not self._TASK and self.initialized

    @property
    def updated(self):  # the original client's name for "changed since the last push"
        return self.dirty

    def acked(self, gen):
        """The cloud acknowledged the push of generation `gen`."""
        self._acked = gen

    # -- wire -------------------------------------------------------------------------

    def records(self, out):
        """Append this variable's SenML records (dicts) to `out`."""
        if self._FIELDS:
            for f in self._FIELDS:
                out.append(_record(self.name + ":" + f, self._vals[f]))
        else:
            out.append(_record(self.name, self._value))

    def cloud_value(self, field, value):
        """`value` converted for `field` (None for a scalar); TypeError/KeyError if unfit."""
        if self._FIELDS:
            if field not in self._vals:
                raise KeyError(field)
            kind = self._KINDS[self._FIELDS.index(field)]
            return coerce(self.name + ":" + field, None, value, kind)
        if field is not None:
            raise KeyError(field)
        return coerce(self.name, self._value, value)

    def cloud_set(self, field, value):
        """Apply a value from the cloud; raises TypeError/KeyError when it does not fit.

        A cloud value is not sent back: the generation it creates counts as acknowledged.
        """
        value = self.cloud_value(field, value)
        if self._FIELDS:
            self._vals[field] = value
        else:
            self._value = value
        self._gen += 1
        self._acked = self._gen

    def cloud_uninitialized(self, field):
        """True when the cloud's last value for `field` may initialise this variable."""
        if self._FIELDS:
            return field in self._vals and self._vals[field] is None
        return field is None and self._value is None

    # -- scheduling -------------------------------------------------------------------

    @property
    def scheduled(self):
        return self.on_run is not None or self.on_read is not None

    def run(self, client):
        """One scheduled turn: on_run then on_read. Exceptions go to the caller."""
        if self.on_run is not None:
            self.on_run(client, self.args)
        if self.on_read is not None:
            self.value = self.on_read(client)

    def next_interval_s(self):
        if self.backoff is not None:
            self.interval = min(self.interval * self.backoff, 5.0)
        return self.interval


def _record(name, value):
    t = type(value)
    if t is bool:
        return {"n": name, "vb": value}
    if t is str:
        return {"n": name, "vs": value}
    return {"n": name, "v": value}


class Task(CloudObject):
    """User code run by the client's scheduler: on_run(client, args) every `interval` s."""

    _TASK = True


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
