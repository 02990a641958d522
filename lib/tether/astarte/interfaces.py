"""Astarte interface JSON, checked strictly: each error names the interface and the field.

    iface = Interface(json.load(f))          # a tether.astarte.model.Interface
    iface = load("/flash/interfaces/org.x.Sensors.json")

The rules are the SDK's (astarte-device-sdk 0.14, mapping.py and interface.py) made
strict: an unknown key is refused too (a typo such as "allow_unest" would otherwise be
silently ignored). What is checked here is needed only while reading interfaces: the
client keeps the run-time objects (tether.astarte.model) and, on a board, drops this
module again (DeviceMqtt reads interfaces through tether.compat.build_once).
"""

from tether.astarte.errors import InterfaceFileDecodeError
from tether.astarte.model import Interface as _Interface
from tether.astarte.model import Mapping as _Mapping
from tether.compat import const

QOS = {"unreliable": 0, "guaranteed": 1, "unique": 2}  # a datastream's reliability
_MAX_NAME = const(127)
_MAX_MAPPINGS = const(1024)
_MAX_LEVELS = const(64)

SCALARS = ("double", "integer", "boolean", "longinteger", "string", "binaryblob", "datetime")
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


def _mapping(d, name, iface_type, iface_ets, index):
    where = "%s: mappings[%d]" % (name, index)
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
    for lv in levels[1:]:
        if not (lv.startswith("%{") and lv.endswith("}") and _ident(lv[2:-1])) and not _ident(lv):
            raise InterfaceFileDecodeError(
                "%s: endpoint level %r is neither a name ([a-zA-Z_][a-zA-Z0-9_]*) nor "
                "%%{param}" % (where, lv)
            )
    t = d.get("type")
    base = t[:-5] if isinstance(t, str) and t.endswith("array") else t
    if base not in SCALARS:
        raise InterfaceFileDecodeError(
            "%s: type %r is not one of %s and their ...array forms"
            % (where, t, ", ".join(SCALARS))
        )
    stream = iface_type == "datastream"
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
    qos = QOS[rel] if stream else 2
    ets = _bool(d, "explicit_timestamp", where, iface_ets)
    unset = _bool(d, "allow_unset", where)
    exp = d.get("expiry", 0)
    if type(exp) is not int:
        raise InterfaceFileDecodeError("%s: expiry must be an integer" % where)
    if d.get("retention", "discard") not in ("discard", "volatile", "stored"):
        raise InterfaceFileDecodeError("%s: retention must be discard, volatile or stored" % where)
    return _Mapping(ep, t, qos, ets, unset)


def Interface(d):  # noqa: N802 (the name users know; it builds an iface.Interface)
    """The run-time Interface of a checked interface JSON object (a dict)."""
    if not isinstance(d, dict):
        raise InterfaceFileDecodeError("interface: must be a JSON object")
    name = d.get("interface_name")
    if not valid_name(name):
        raise InterfaceFileDecodeError(
            "interface_name %r: required, a reverse-domain name (letters, digits, dots, "
            "< 128 characters)" % (name,)
        )
    _unknown(d, _IFACE_KEYS, name)
    for k in ("version_major", "version_minor"):
        v = d.get(k)
        if type(v) is not int or v < 0:
            raise InterfaceFileDecodeError("%s: %s is required, an integer >= 0" % (name, k))
    major = d["version_major"]
    minor = d["version_minor"]
    if not major and not minor:
        raise InterfaceFileDecodeError("%s: version_major and version_minor are both 0" % name)
    typ = d.get("type")
    if typ not in ("datastream", "properties"):
        raise InterfaceFileDecodeError("%s: type %r is not datastream or properties" % (name, typ))
    own = d.get("ownership")
    if own not in ("device", "server"):
        raise InterfaceFileDecodeError("%s: ownership %r is not device or server" % (name, own))
    agg = d.get("aggregation", "individual")
    if agg not in ("individual", "object"):
        raise InterfaceFileDecodeError(
            "%s: aggregation %r is not individual or object" % (name, agg)
        )
    if agg == "object" and typ == "properties":
        raise InterfaceFileDecodeError("%s: aggregation object is for datastreams" % name)
    if "explicit_timestamp" in d and typ != "datastream":
        raise InterfaceFileDecodeError("%s: explicit_timestamp is for datastreams" % name)
    ets = _bool(d, "explicit_timestamp", name)
    ms = d.get("mappings")
    if not isinstance(ms, list) or not 1 <= len(ms) <= _MAX_MAPPINGS:
        raise InterfaceFileDecodeError("%s: mappings must be a list of 1..1024" % name)
    mappings = []
    for i, md in enumerate(ms):
        m = _mapping(md, name, typ, ets, i)
        for other in mappings:
            if _overlap(m.levels, other.levels):
                raise InterfaceFileDecodeError(
                    "%s: mappings[%d] endpoint %s overlaps %s"
                    % (name, i, m.endpoint, other.endpoint)
                )
        mappings.append(m)
    if agg == "object":
        first = mappings[0]
        for i, m in enumerate(mappings):
            if (m.qos, m.explicit_timestamp) != (first.qos, first.explicit_timestamp):
                raise InterfaceFileDecodeError(
                    "%s: mappings[%d]: an object's mappings share reliability and "
                    "explicit_timestamp" % (name, i)
                )
            if len(m.levels) != len(first.levels) or len(m.levels) < 2:
                raise InterfaceFileDecodeError(
                    "%s: mappings[%d]: an object's endpoints have the same depth, >= 2" % (name, i)
                )
    return _Interface(name, major, minor, typ, own, agg, mappings)


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
