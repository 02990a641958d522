"""Astarte interfaces: strict parsing of the interface JSON, and value checks per mapping.

    iface = Interface(json.load(f))          # InterfaceFileDecodeError names the bad field
    m = iface.mapping("/s1/temperature")      # the Mapping whose endpoint matches, or None
    m.check(21.5)                             # ValidationError: "... is double, got int"
    iface.qos("/s1/temperature")              # 0/1/2 by reliability, properties 2

The rules are the SDK's (astarte-device-sdk 0.14, mapping.py and interface.py) made
strict: an unknown key is refused too (a typo such as "allow_unest" would otherwise be
silently ignored). Types: an int is not a double and a bool is not an int (the type is
compared exactly, as the SDK does), integer is int32, longinteger int64, doubles finite,
arrays at most 1024 items. A datetime is `datetime.datetime` (CPython) or
tether.bson.UTCDateTime (both interpreters).

A parameter (`%{name}`) in an endpoint matches one path level: any non-empty level
without `+` or `#`, as Astarte itself does (the SDK only takes identifiers there).
"""

from tether.astarte.errors import InterfaceFileDecodeError, ValidationError
from tether.compat import const

_MAX_NAME = const(127)
_MAX_MAPPINGS = const(1024)
_MAX_LEVELS = const(64)
_MAX_ITEMS = const(1024)
_MAX_BYTES = const(65536)
_INT32_MIN = const(-0x80000000)
_INT32_MAX = const(0x7FFFFFFF)
_INT64_MIN = -0x8000000000000000  # not const(): beyond a small int on 32-bit ports
_INT64_MAX = 0x7FFFFFFFFFFFFFFF

SCALARS = ("double", "integer", "boolean", "longinteger", "string", "binaryblob", "datetime")
QOS = {"unreliable": 0, "guaranteed": 1, "unique": 2}
_IFACE_KEYS = (
    "interface_name", "version_major", "version_minor", "type", "ownership", "aggregation",
    "explicit_timestamp", "description", "doc", "mappings",
)  # fmt: skip
_MAPPING_KEYS = (
    "endpoint", "type", "reliability", "explicit_timestamp", "retention", "expiry",
    "database_retention_policy", "database_retention_ttl", "allow_unset", "description",
    "doc",
)  # fmt: skip


def _alnum(c, extra=""):
    return ("a" <= c <= "z") or ("A" <= c <= "Z") or ("0" <= c <= "9") or c in extra


def _alpha(c):
    return ("a" <= c <= "z") or ("A" <= c <= "Z")


def _word(s, first, rest=""):
    # first(s[0]) and every other character alphanumeric (or in rest)
    if not s or not first(s[0]):
        return False
    for c in s[1:]:
        if not _alnum(c, rest):
            return False
    return True


def valid_name(name):
    """Astarte's interface name rule (reverse domain, dots between parts)."""
    if not isinstance(name, str) or not 0 < len(name) <= _MAX_NAME:
        return False
    parts = name.split(".")
    for i, p in enumerate(parts):
        if i == 0 or i == len(parts) - 1:
            if not _word(p, _alpha):
                return False
        elif not _word(p, lambda c: _alnum(c), "-"):
            return False
    return True


def _ident(s):
    return _word(s, lambda c: _alpha(c) or c == "_", "_")


def _bool(d, key, where, default=False):
    v = d.get(key, default)
    if type(v) is not bool:
        raise InterfaceFileDecodeError("%s: %s must be true or false, not %r" % (where, key, v))
    return v


def _unknown(d, known, where):
    for k in d:
        if k not in known:
            raise InterfaceFileDecodeError("%s: unknown key %r" % (where, k))


def _is_datetime(v):
    if type(v).__name__ == "UTCDateTime":
        return True
    try:
        import datetime

        return isinstance(v, datetime.datetime)
    except ImportError:  # MicroPython: UTCDateTime only
        return False


class Mapping:
    def __init__(self, d, iface, index):
        where = "%s: mappings[%d]" % (iface.name, index)
        if not isinstance(d, dict):
            raise InterfaceFileDecodeError("%s: must be an object" % where)
        _unknown(d, _MAPPING_KEYS, where)
        ep = d.get("endpoint")
        if not isinstance(ep, str):
            raise InterfaceFileDecodeError("%s: endpoint is required (a string)" % where)
        where = "%s (%s)" % (where, ep)
        levels = ep.split("/")
        if levels[0] != "" or not 1 <= len(levels) - 1 <= _MAX_LEVELS:
            raise InterfaceFileDecodeError(
                "%s: endpoint must be /level[/level...] with 1..64 levels" % where
            )
        self.levels = []  # a str to match exactly, or None for a parameter
        for lv in levels[1:]:
            if lv.startswith("%{") and lv.endswith("}") and _ident(lv[2:-1]):
                self.levels.append(None)
            elif _ident(lv):
                self.levels.append(lv)
            else:
                raise InterfaceFileDecodeError(
                    "%s: endpoint level %r is neither a name ([a-zA-Z_][a-zA-Z0-9_]*) nor "
                    "%%{param}" % (where, lv)
                )
        self.endpoint = ep
        t = d.get("type")
        base = t[:-5] if isinstance(t, str) and t.endswith("array") else t
        if base not in SCALARS:
            raise InterfaceFileDecodeError(
                "%s: type %r is not one of %s and their ...array forms"
                % (where, t, ", ".join(SCALARS))
            )
        self.type = t
        self.base = base
        self.array = base != t
        stream = iface.type == "datastream"
        for key in ("reliability", "explicit_timestamp", "retention", "expiry"):
            if key in d and not stream:
                raise InterfaceFileDecodeError("%s: %s is for datastreams only" % (where, key))
        if "allow_unset" in d and stream:
            raise InterfaceFileDecodeError("%s: allow_unset is for properties only" % where)
        rel = d.get("reliability", "unreliable")
        if rel not in QOS:
            raise InterfaceFileDecodeError(
                "%s: reliability %r is not one of unreliable, guaranteed, unique" % (where, rel)
            )
        self.qos = QOS[rel] if stream else 2
        self.reliability = self.qos  # the SDK's name: the QoS number
        self.explicit_timestamp = _bool(d, "explicit_timestamp", where, iface.explicit_timestamp)
        self.allow_unset = _bool(d, "allow_unset", where)
        exp = d.get("expiry", 0)
        if type(exp) is not int:
            raise InterfaceFileDecodeError("%s: expiry must be an integer" % where)
        if d.get("retention", "discard") not in ("discard", "volatile", "stored"):
            raise InterfaceFileDecodeError(
                "%s: retention must be discard, volatile or stored" % where
            )

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
    def __init__(self, d):
        if not isinstance(d, dict):
            raise InterfaceFileDecodeError("interface: must be a JSON object")
        name = d.get("interface_name")
        if not valid_name(name):
            raise InterfaceFileDecodeError(
                "interface_name %r: required, a reverse-domain name (letters, digits, dots, "
                "< 128 characters)" % (name,)
            )
        self.name = name
        _unknown(d, _IFACE_KEYS, name)
        for k in ("version_major", "version_minor"):
            v = d.get(k)
            if type(v) is not int or v < 0:
                raise InterfaceFileDecodeError("%s: %s is required, an integer >= 0" % (name, k))
        self.version_major = d["version_major"]
        self.version_minor = d["version_minor"]
        if not self.version_major and not self.version_minor:
            raise InterfaceFileDecodeError("%s: version_major and version_minor are both 0" % name)
        self.type = d.get("type")
        if self.type not in ("datastream", "properties"):
            raise InterfaceFileDecodeError(
                "%s: type %r is not datastream or properties" % (name, self.type)
            )
        self.ownership = d.get("ownership")
        if self.ownership not in ("device", "server"):
            raise InterfaceFileDecodeError(
                "%s: ownership %r is not device or server" % (name, self.ownership)
            )
        self.aggregation = d.get("aggregation", "individual")
        if self.aggregation not in ("individual", "object"):
            raise InterfaceFileDecodeError(
                "%s: aggregation %r is not individual or object" % (name, self.aggregation)
            )
        if self.aggregation == "object" and self.type == "properties":
            raise InterfaceFileDecodeError("%s: aggregation object is for datastreams" % name)
        if "explicit_timestamp" in d and self.type != "datastream":
            raise InterfaceFileDecodeError("%s: explicit_timestamp is for datastreams" % name)
        self.explicit_timestamp = _bool(d, "explicit_timestamp", name)
        ms = d.get("mappings")
        if not isinstance(ms, list) or not 1 <= len(ms) <= _MAX_MAPPINGS:
            raise InterfaceFileDecodeError("%s: mappings must be a list of 1..1024" % name)
        self.mappings = []
        for i, md in enumerate(ms):
            m = Mapping(md, self, i)
            for other in self.mappings:
                if _overlap(m.levels, other.levels):
                    raise InterfaceFileDecodeError(
                        "%s: mappings[%d] endpoint %s overlaps %s"
                        % (name, i, m.endpoint, other.endpoint)
                    )
            self.mappings.append(m)
        if self.aggregation == "object":
            first = self.mappings[0]
            for i, m in enumerate(self.mappings):
                if (m.qos, m.explicit_timestamp) != (first.qos, first.explicit_timestamp):
                    raise InterfaceFileDecodeError(
                        "%s: mappings[%d]: an object's mappings share reliability and "
                        "explicit_timestamp" % (name, i)
                    )
                if len(m.levels) != len(first.levels) or len(m.levels) < 2:
                    raise InterfaceFileDecodeError(
                        "%s: mappings[%d]: an object's endpoints have the same depth, >= 2"
                        % (name, i)
                    )

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


def _overlap(a, b):
    # Two endpoints a path could match both: same depth, each level equal or a parameter.
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x is not None and y is not None and x != y:
            return False
    return True


def load(path):
    """An Interface from a JSON file (InterfaceFileNotFoundError / InterfaceFileDecodeError)."""
    import json

    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        from tether.astarte.errors import InterfaceFileNotFoundError

        raise InterfaceFileNotFoundError('"%s" does not exist or is not a file' % path)
    try:
        d = json.loads(text)
    except ValueError:
        raise InterfaceFileDecodeError('"%s" is not a parsable json file' % path)
    try:
        return Interface(d)
    except InterfaceFileDecodeError as exc:
        raise InterfaceFileDecodeError("%s: %s" % (path, exc.msg))
