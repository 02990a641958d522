"""Astarte interfaces at run time: endpoint lookups and value checks per mapping.

    m = iface.mapping("/s1/temperature")      # the Mapping whose endpoint matches, or None
    m.check(21.5)                             # ValidationError: "... is double, got int"
    iface.qos("/s1/temperature")              # 0/1/2 by reliability, properties 2

Made by tether.astarte.iface (from the compact form, or from interface JSON through the
parser tether.astarte.interfaces); both import this module and it imports neither. It
holds only what sends and receives need.

Types follow the SDK (astarte-device-sdk 0.14): the type is compared exactly (an int is
not a double, a bool not an int), integer is int32, longinteger int64, doubles finite,
arrays at most 1024 items. A datetime is `datetime.datetime` (CPython) or
tether.bson.UTCDateTime (both interpreters). A parameter level (`%{name}`) matches any
non-empty level without `+` or `#`, as Astarte itself does.
"""

from tether.astarte.errors import ValidationError
from tether.compat import const

_MAX_ITEMS = const(1024)
_MAX_BYTES = const(65536)
_INT32_MIN = const(-0x80000000)
_INT32_MAX = const(0x7FFFFFFF)
_INT64_MIN = -0x8000000000000000  # not const(): beyond a small int on 32-bit ports
_INT64_MAX = 0x7FFFFFFFFFFFFFFF


def _is_datetime(v):
    if type(v).__name__ == "UTCDateTime":
        return True
    try:
        import datetime

        return isinstance(v, datetime.datetime)
    except ImportError:  # MicroPython: UTCDateTime only
        return False


def levels_of(endpoint):
    """An endpoint's levels: a str to match exactly, None for a parameter."""
    return [None if lv.startswith("%{") else lv for lv in endpoint.split("/")[1:]]


class Mapping:
    def __init__(self, endpoint, type_, qos, explicit_timestamp, allow_unset):
        self.endpoint = endpoint
        self.levels = levels_of(endpoint)
        self.type = type_
        self.base = type_[:-5] if type_.endswith("array") else type_
        self.array = self.base != type_
        self.qos = qos
        self.reliability = qos  # the SDK's name: the QoS number
        self.explicit_timestamp = explicit_timestamp
        self.allow_unset = allow_unset

    def matches(self, levels):
        """True when path levels (a list of str) fit this endpoint."""
        if len(levels) != len(self.levels):
            return False
        for want, got in zip(self.levels, levels):
            if want is None:
                if not got or "+" in got or "#" in got:
                    return False
            elif want != got:
                return False
        return True

    def check(self, value):
        """ValidationError unless value has this mapping's type (the SDK's rules)."""
        if self.array:
            if type(value) is not list and type(value) is not tuple:
                raise ValidationError("%s is %s: expected a list" % (self.endpoint, self.type))
            if len(value) > _MAX_ITEMS:
                raise ValidationError("%s: more than 1024 items" % self.endpoint)
            for v in value:
                self._scalar(v)
        else:
            self._scalar(value)

    def _scalar(self, v):
        b = self.base
        t = type(v)
        if b == "double":
            ok = t is float
            if ok and (v != v or v in (float("inf"), float("-inf"))):
                raise ValidationError("%s is double: %r is not finite" % (self.endpoint, v))
        elif b == "integer" or b == "longinteger":
            ok = t is int
            if ok and b == "integer" and not _INT32_MIN <= v <= _INT32_MAX:
                raise ValidationError(
                    "%s is integer: %d is out of int32 range" % (self.endpoint, v)
                )
            if ok and not _INT64_MIN <= v <= _INT64_MAX:
                raise ValidationError("%s: %d is out of int64 range" % (self.endpoint, v))
        elif b == "boolean":
            ok = t is bool
        elif b == "string":
            ok = t is str
            if ok and len(v) > _MAX_BYTES // 4 and len(v.encode()) > _MAX_BYTES:
                raise ValidationError("%s: string longer than 65536 bytes" % self.endpoint)
        elif b == "binaryblob":
            ok = t is bytes or t is bytearray
            if ok and len(v) >= _MAX_BYTES:
                raise ValidationError("%s: binaryblob of 64 KiB or more" % self.endpoint)
        else:
            ok = _is_datetime(v)
        if not ok:
            raise ValidationError("%s is %s, got %s" % (self.endpoint, self.type, t.__name__))

    def check_timestamp(self, ts):
        if self.explicit_timestamp and ts is None:
            raise ValidationError("timestamp required for %s" % self.endpoint)
        if not self.explicit_timestamp and ts is not None:
            raise ValidationError("%s has no explicit_timestamp: no timestamp" % self.endpoint)
        if ts is not None and not _is_datetime(ts):
            raise ValidationError("timestamp for %s: a datetime or UTCDateTime" % self.endpoint)


class Interface:
    def __init__(self, name, major, minor, type_, ownership, aggregation, mappings):
        self.name = name
        self.version_major = major
        self.version_minor = minor
        self.type = type_
        self.ownership = ownership
        self.aggregation = aggregation
        self.mappings = mappings

    # -- the SDK's names -------------------------------------------------------------

    def is_server_owned(self):
        return self.ownership == "server"

    def is_type_properties(self):
        return self.type == "properties"

    def is_aggregation_object(self):
        return self.aggregation == "object"

    def get_mapping(self, path):
        return self.mapping(path)

    # -- lookups ---------------------------------------------------------------------

    def mapping(self, path):
        """The Mapping whose endpoint matches path ("/a/b"), or None."""
        if not isinstance(path, str) or not path.startswith("/"):
            return None
        levels = path[1:].split("/")
        for m in self.mappings:
            if m.matches(levels):
                return m
        return None

    def qos(self, path=None):
        if self.type == "properties":
            return 2
        if self.aggregation == "object":
            return self.mappings[0].qos
        m = self.mapping(path)
        return 0 if m is None else m.qos

    def check_individual(self, path, value, ts=None):
        """The Mapping for a checked individual value (and timestamp)."""
        m = self.mapping(path)
        if m is None:
            raise ValidationError("path %s is not in %s" % (path, self.name))
        m.check(value)
        if self.type == "datastream":
            m.check_timestamp(ts)
        return m

    def check_object(self, path, value, ts=None, complete=True):
        """Check an aggregate {leaf: value}; a device-owned one must have every mapping."""
        if not isinstance(value, dict):
            raise ValidationError("%s is an object aggregate: payload must be a dict" % self.name)
        prefix = "" if path == "/" else path
        for k, v in value.items():
            m = self.mapping(prefix + "/" + k)
            if m is None:
                raise ValidationError("path %s/%s is not in %s" % (prefix, k, self.name))
            m.check(v)
            m.check_timestamp(ts)
        if complete:
            skip = 1 + (0 if prefix == "" else len(prefix[1:].split("/")))
            for m in self.mappings:
                leaf = "/".join(m.endpoint.split("/")[skip:])
                if leaf not in value:
                    raise ValidationError("%s: %r missing from the object" % (self.name, leaf))
