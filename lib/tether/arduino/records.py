"""Cloud variables: scalars, the base of the composite types, and Task (arduino-iot-cloud-py).

A variable keeps two counters instead of a "changed" flag: `_gen` grows on every local
change and `_acked` is the generation the cloud has acknowledged (PUBACK). The variable is
dirty while they differ, so a value whose publish failed, or that changed again while its
publish was in flight, is simply sent again; nothing is lost across a reconnect.

A composite type (Location, Color, ...) is one variable with named fields. On the wire
each field is its own SenML record named "{var}:{field}", and all fields are always sent
together because the cloud has no partial-object update:

    Location("home", lat=1.5, lon=2.0)  ->  [{0: "home:lat", 2: 1.5}, {0: "home:lon", 2: 2.0}]

The types themselves are in tether.arduino.composites, which builds on this module and is
never imported by it: the package (`from tether.arduino import Location`) loads it when one
is first named, so a client with scalar variables only never pays for them.
"""

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
    # Defaults as class attributes: an instance stores only what differs, so a plain
    # variable's attribute table is half the size (10 variables: ~0.5 KB on a 32-bit board).
    on_read = None
    on_write = None
    on_run = None
    interval = 1.0
    backoff = None
    args = None
    # The client it is registered with (register() sets it): its _changed() wakes the
    # pusher. The client itself, not a bound method: one object less per variable.
    _client = None

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
        if on_read is not None:
            self.on_read = on_read
        if on_write is not None:
            self.on_write = on_write
        if on_run is not None:
            self.on_run = on_run
        if interval != 1.0:
            self.interval = interval
        if backoff is not None:
            self.backoff = backoff
        if args is not None:
            self.args = args
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
        if self._client is not None:
            self._client._changed()

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

    def current(self, field):
        """The value of `field` (None for a scalar) as it is now."""
        if self._FIELDS:
            return self._vals.get(field)
        return self._value

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
