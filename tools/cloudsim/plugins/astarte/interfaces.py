"""Astarte interfaces as the emulated realm knows them, and the server's checks of every
value against them (protocols.md §5.5, §5.7).

The emulator decodes BSON with pymongo (an int64 comes back as bson.int64.Int64, a plain
int is an int32), never with Tether's codec, so a device test is also a compatibility test.
Checks are the server's, a little stricter than the SDK's where that catches device bugs:
an int is not a double, an integer must fit int32, a double must be finite, a timestamp
is present exactly when the mapping has explicit_timestamp, a device-owned object has all
its fields, an unset needs allow_unset.
"""

import base64
import datetime
import json
import math
import re

from bson.int64 import Int64

NAME_RE = re.compile(
    r"^([a-zA-Z][a-zA-Z0-9]*\.([a-zA-Z0-9][a-zA-Z0-9-]*\.)*)?[a-zA-Z][a-zA-Z0-9]*$"
)
_PARAM_RE = re.compile(r"^%\{[a-zA-Z_][a-zA-Z0-9_]*\}$")
_LEVEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
SCALARS = ("double", "integer", "boolean", "longinteger", "string", "binaryblob", "datetime")
TYPES = SCALARS + tuple(t + "array" for t in SCALARS)
QOS = {"unreliable": 0, "guaranteed": 1, "unique": 2}
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
MAX_BYTES = 65536  # string and binaryblob (SDK doc; the 64 KiB frame limit dominates anyway)
MAX_ITEMS = 1024
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_MEMO_LEN = 4096


class InterfaceError(ValueError):
    """A bad interface definition; the message names the field."""


class Invalid(ValueError):
    """A message the server refuses; the message says why."""


class Mapping:
    def __init__(self, d, iface):
        where = "%s mapping %r" % (iface.name, d.get("endpoint"))
        ep = d.get("endpoint")
        if not isinstance(ep, str) or not ep.startswith("/"):
            raise InterfaceError("%s: endpoint must be a string starting with /" % where)
        self.endpoint = ep
        self.levels = ep[1:].split("/")
        if not 1 <= len(self.levels) <= 64:
            raise InterfaceError("%s: endpoint needs 1..64 levels" % where)
        for level in self.levels:
            if not (_PARAM_RE.match(level) or _LEVEL_RE.match(level)):
                raise InterfaceError("%s: bad endpoint level %r" % (where, level))
        self.type = d.get("type")
        if self.type not in TYPES:
            raise InterfaceError("%s: type must be one of %s" % (where, ", ".join(TYPES)))
        datastream = iface.type == "datastream"
        for key in ("reliability", "explicit_timestamp", "retention", "expiry"):
            if key in d and not datastream:
                raise InterfaceError("%s: %s is for datastreams only" % (where, key))
        if "allow_unset" in d and datastream:
            raise InterfaceError("%s: allow_unset is for properties only" % where)
        rel = d.get("reliability", "unreliable")
        if rel not in QOS:
            raise InterfaceError("%s: reliability must be one of %s" % (where, ", ".join(QOS)))
        self.qos = QOS[rel] if datastream else 2
        self.explicit_timestamp = d.get("explicit_timestamp", iface.explicit_timestamp)
        self.allow_unset = d.get("allow_unset", False)
        for key in ("explicit_timestamp", "allow_unset"):
            if not isinstance(getattr(self, key), bool):
                raise InterfaceError("%s: %s must be true or false" % (where, key))

    def matches(self, levels):
        if len(levels) != len(self.levels):
            return False
        for want, got in zip(self.levels, levels):
            if want.startswith("%{"):
                # The server takes any one level; wildcards never name a path.
                if not got or "+" in got or "#" in got:
                    return False
            elif want != got:
                return False
        return True


class Interface:
    def __init__(self, d):
        if not isinstance(d, dict):
            raise InterfaceError("an interface is a JSON object")
        self.name = d.get("interface_name")
        if not isinstance(self.name, str) or not NAME_RE.match(self.name) or len(self.name) > 127:
            raise InterfaceError("interface_name %r is not a valid name" % (self.name,))
        self.major, self.minor = d.get("version_major"), d.get("version_minor")
        for key, v in (("version_major", self.major), ("version_minor", self.minor)):
            if type(v) is not int or v < 0:
                raise InterfaceError("%s: %s must be an integer >= 0" % (self.name, key))
        if not self.major and not self.minor:
            raise InterfaceError("%s: version_major and version_minor are both 0" % self.name)
        self.type = d.get("type")
        if self.type not in ("datastream", "properties"):
            raise InterfaceError("%s: type must be datastream or properties" % self.name)
        self.ownership = d.get("ownership")
        if self.ownership not in ("device", "server"):
            raise InterfaceError("%s: ownership must be device or server" % self.name)
        self.aggregation = d.get("aggregation", "individual")
        if self.aggregation not in ("individual", "object"):
            raise InterfaceError("%s: aggregation must be individual or object" % self.name)
        if self.aggregation == "object" and self.type == "properties":
            raise InterfaceError("%s: properties cannot be object-aggregated" % self.name)
        self.explicit_timestamp = d.get("explicit_timestamp", False)
        raw = d.get("mappings")
        if not isinstance(raw, list) or not 1 <= len(raw) <= 1024:
            raise InterfaceError("%s: mappings must be a list of 1..1024 objects" % self.name)
        self.mappings = [Mapping(m, self) for m in raw]
        self._by_path = {}  # path -> its mapping or None (mapping())
        seen = set()
        for m in self.mappings:
            key = tuple("%" if lv.startswith("%{") else lv for lv in m.levels)
            if key in seen:
                raise InterfaceError("%s: endpoint %s is ambiguous" % (self.name, m.endpoint))
            seen.add(key)
        if self.object:
            first = self.mappings[0]
            for m in self.mappings:
                if (m.qos, m.explicit_timestamp) != (first.qos, first.explicit_timestamp):
                    raise InterfaceError(
                        "%s: object mappings must share reliability and explicit_timestamp"
                        % self.name
                    )
                if len(m.levels) != len(first.levels) or m.levels[:-1] != first.levels[:-1]:
                    raise InterfaceError(
                        "%s: object endpoints must share all levels but the last" % self.name
                    )

    @property
    def object(self):
        return self.aggregation == "object"

    @property
    def properties(self):
        return self.type == "properties"

    def mapping(self, path):
        """The mapping an individual path names, or None."""
        # Asked twice for every message (the check, the QoS): the mappings are scanned once
        # per path (a bounded memo: a path parameter may take any number of values).
        memo = self._by_path
        if path in memo:
            return memo[path]
        levels = path[1:].split("/") if path.startswith("/") else None
        found = None
        if levels is not None:
            for m in self.mappings:
                if m.matches(levels):
                    found = m
                    break
        if len(memo) >= _MEMO_LEN:
            memo.clear()
        memo[path] = found
        return found

    def object_fields(self, path):
        """{field: mapping} of an object sent on path (the common prefix; "" at the root)."""
        prefix = path[1:].split("/") if path else []
        fields = {}
        for m in self.mappings:
            if m.matches(prefix + [m.levels[-1]]):
                fields[m.levels[-1]] = m
        return fields

    def qos(self, path):
        if self.properties:
            return 2
        m = self.mappings[0] if self.object else self.mapping(path)
        return m.qos if m else 2


def load(source):
    """An Interface from a dict, JSON text, or a path to a JSON file."""
    if isinstance(source, dict):
        return Interface(source)
    text = str(source)
    if not text.lstrip().startswith("{"):
        with open(text, encoding="utf-8") as f:
            text = f.read()
    try:
        return Interface(json.loads(text))
    except ValueError as exc:
        if isinstance(exc, InterfaceError):
            raise
        raise InterfaceError("interface JSON does not parse: %s" % exc)


# -- values ------------------------------------------------------------------------------------


def _check_scalar(kind, v, where):
    t = type(v)
    if kind in ("integer", "longinteger"):
        lo, hi = INT32 if kind == "integer" else INT64
        if t not in (int, Int64) or not lo <= v <= hi:
            raise Invalid("%s: %s needs an integer in [%d, %d], got %r" % (where, kind, lo, hi, v))
        return int(v)
    if kind == "double":
        if t is not float or not math.isfinite(v):
            raise Invalid("%s: double needs a finite BSON double, got %r" % (where, v))
        return v
    if kind == "boolean":
        if t is not bool:
            raise Invalid("%s: boolean needs true/false, got %r" % (where, v))
        return v
    if kind == "string":
        if t is not str or len(v.encode("utf-8")) > MAX_BYTES:
            raise Invalid("%s: string needs text up to %d bytes" % (where, MAX_BYTES))
        return v
    if kind == "binaryblob":
        if not isinstance(v, (bytes, bytearray)) or len(v) > MAX_BYTES:
            raise Invalid("%s: binaryblob needs bytes up to %d" % (where, MAX_BYTES))
        return bytes(v)
    if kind == "datetime":
        if t is not datetime.datetime:
            raise Invalid("%s: datetime needs a BSON UTC datetime, got %r" % (where, v))
        return v
    raise Invalid("%s: unknown type %s" % (where, kind))


def check_value(mapping, v, where):
    """The value as stored (Int64 -> int); Invalid when it does not fit the mapping."""
    kind = mapping.type
    if not kind.endswith("array"):
        return _check_scalar(kind, v, where)
    if type(v) is not list or len(v) > MAX_ITEMS:
        raise Invalid("%s: %s needs a list of up to %d items" % (where, kind, MAX_ITEMS))
    return [_check_scalar(kind[:-5], x, "%s[%d]" % (where, i)) for i, x in enumerate(v)]


def check_message(iface, path, doc):
    """Check a device's (or the test's) message on iface+path; doc is the decoded BSON
    document, or None for an empty payload (an unset). Returns (value, timestamp) with
    value None for an unset; raises Invalid."""
    where = iface.name + (path or "/")
    if doc is None:
        if not iface.properties:
            raise Invalid("%s: empty payload on a datastream" % where)
        m = iface.mapping(path)
        if m is None:
            raise Invalid("%s: no mapping for this path" % where)
        if not m.allow_unset:
            raise Invalid("%s: unset without allow_unset" % where)
        return None, None
    if not isinstance(doc, dict) or "v" not in doc:
        raise Invalid("%s: the BSON document has no 'v'" % where)
    extra = set(doc) - {"v", "t"}
    if extra:
        raise Invalid("%s: unexpected keys %s" % (where, sorted(extra)))
    if iface.object:
        fields = iface.object_fields(path)
        if not fields:
            raise Invalid("%s: no object of this interface lives here" % where)
        v = doc["v"]
        if not isinstance(v, dict):
            raise Invalid("%s: an object aggregate needs a document as 'v'" % where)
        unknown = sorted(set(v) - set(fields))
        if unknown:
            raise Invalid("%s: fields %s are not in the interface" % (where, unknown))
        missing = sorted(set(fields) - set(v))
        if missing and iface.ownership == "device":
            raise Invalid("%s: incomplete object, missing %s" % (where, missing))
        value = {k: check_value(fields[k], x, "%s/%s" % (where, k)) for k, x in v.items()}
        m = iface.mappings[0]
    else:
        m = iface.mapping(path)
        if m is None:
            raise Invalid("%s: no mapping for this path" % where)
        value = check_value(m, doc["v"], where)
    t = doc.get("t")
    if iface.properties:
        if "t" in doc:
            raise Invalid("%s: properties take no timestamp" % where)
    elif m.explicit_timestamp:
        if type(t) is not datetime.datetime:
            raise Invalid("%s: explicit_timestamp needs 't' as a BSON datetime" % where)
    elif "t" in doc:
        raise Invalid("%s: 't' sent but the mapping has no explicit_timestamp" % where)
    return value, t


def encode_value(mapping, v):
    """A Python value as pymongo must encode it for this mapping (longinteger as int64)."""
    if mapping.type in ("longinteger", "longintegerarray"):
        return [Int64(x) for x in v] if isinstance(v, list) else Int64(v)
    return v


def from_json(mapping, v):
    """A value from JSON (the dashboard) in the mapping's Python type: numbers to float for
    doubles, base64 text for blobs, ISO 8601 text or ms for datetimes."""
    kind = mapping.type
    if kind.endswith("array"):
        return [_from_json_scalar(kind[:-5], x) for x in (v or [])]
    return _from_json_scalar(kind, v)


def _from_json_scalar(kind, v):
    if kind == "double" and type(v) is int:
        return float(v)
    if kind in ("integer", "longinteger") and isinstance(v, str):
        return int(v)
    if kind == "binaryblob" and isinstance(v, str):
        return base64.b64decode(v)
    if kind == "datetime":
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return _EPOCH + datetime.timedelta(milliseconds=v)
        if isinstance(v, str):
            d = datetime.datetime.fromisoformat(v.replace("Z", "+00:00"))
            return d if d.tzinfo else d.replace(tzinfo=datetime.timezone.utc)
    return v


def to_json(v):
    """A stored value as JSON (dashboard, test logs): datetime as ISO text, bytes base64."""
    if isinstance(v, datetime.datetime):
        return v.isoformat()
    if isinstance(v, bytes):
        return base64.b64encode(v).decode()
    if isinstance(v, list):
        return [to_json(x) for x in v]
    if isinstance(v, dict):
        return {k: to_json(x) for k, x in v.items()}
    return v
