"""Arduino IoT Cloud wire format: topics, command tags, and the messages both ways.

Two kinds of payload travel (docs/protocols.md section 1):

* SenML-CBOR packs, on the property topics (`/a/t/{thing}/e/o`, `e/i`, `shadow/*`,
  `/a/d/{device}/e/i`):   81 a2 00 63 73 77 31 04 f5  =  [{0: "sw1", 4: true}]
* Tagged commands, on `/a/d/{device}/c/up` (device -> cloud) and `c/dw` (cloud -> device):
  a CBOR tag with a 4-byte number, then an array of parameters:
      DeviceBegin ["1.4.1-async"]  =  da 00 01 07 00 81 6b 31 2e 34 2e 31 2d 61 73 79 6e 63

Everything the cloud sends is checked here; anything that does not fit raises
ProtocolError (a CBORError), which the client counts and logs.
"""

from tether import cbor, senml
from tether.cbor import CBORError, Tag
from tether.compat import const

# Command tags (Arduino_CloudUtils / ArduinoIoTCloud message ids).
THING_BEGIN = const(0x010300)  # up   [thing_id: ""]
THING_UPDATE = const(0x010400)  # down [thing_id]   ("" = device not attached to a thing)
LAST_VALUES_BEGIN = const(0x010500)  # up   []
LAST_VALUES_UPDATE = const(0x010600)  # down [bstr wrapping a SenML-CBOR pack]
DEVICE_BEGIN = const(0x010700)  # up   [lib_version]
TIMEZONE_DOWN = const(0x010900)  # down [offset s, dst_until unix s]
THING_DETACH = const(0x011000)  # down [thing_id]

# Decoding limits for cloud messages: deep enough for any real message, small enough that
# hostile input is refused fast and without a large allocation.
_MAX_DEPTH = const(8)
_MAX_ITEMS = const(2048)

# A thing id is a 36-character UUID: 8-4-4-4-12 hex digits.
_UUID_LEN = const(36)
_DASHES = (8, 13, 18, 23)
_HEX = "0123456789abcdefABCDEF"


class ProtocolError(CBORError):
    """A cloud message that is well-formed CBOR (or not) but not what the protocol allows."""


# -- topics -----------------------------------------------------------------------------


def device_topic(device_id, leaf):
    """`/a/d/{device}/{leaf}`, leaf one of "e/i", "c/up", "c/dw"."""
    return "/a/d/" + device_id + "/" + leaf


def thing_topic(thing_id, leaf):
    """`/a/t/{thing}/{leaf}`, leaf one of "e/i", "e/o", "shadow/i", "shadow/o"."""
    return "/a/t/" + thing_id + "/" + leaf


# -- thing ids --------------------------------------------------------------------------


def check_thing_id(value):
    """Return the thing id, "" for "not attached", or raise ProtocolError.

    The id becomes part of topic names, so MQTT wildcards, separators or any other shape
    than a UUID must never get through (a `#` would subscribe to every thing).
    """
    if type(value) is not str:
        raise ProtocolError("thing id is a %s, not a string" % type(value).__name__)
    if value == "":
        return value
    if len(value) != _UUID_LEN:
        raise ProtocolError("thing id of %d characters is not a UUID" % len(value))
    for i in range(_UUID_LEN):
        c = value[i]
        if i in _DASHES:
            if c != "-":
                raise ProtocolError("thing id %r is not a UUID" % value)
        elif c not in _HEX:
            raise ProtocolError("thing id %r is not a UUID" % value)
    return value


# -- device -> cloud ----------------------------------------------------------------------


def command(tag, args):
    return cbor.dumps(Tag(tag, args))


def device_begin(lib_version):
    return command(DEVICE_BEGIN, [lib_version])


def thing_begin():
    return command(THING_BEGIN, [""])


def last_values_begin():
    return command(LAST_VALUES_BEGIN, [])


def get_last_values():
    """The legacy last-values request for `/a/t/{thing}/shadow/o`."""
    return senml.encode([{"n": "r:m", "vs": "getLastValues"}])


def values(records):
    """A SenML pack of the given record dicts, for `/a/t/{thing}/e/o`."""
    return senml.encode(records)


def pack(objs):
    """The SenML pack of these variables' values (what values() makes of their records(),
    byte for byte), written straight from them: a push builds no record dicts."""
    n = 0
    for o in objs:
        n += len(o._FIELDS) or 1
    out = bytearray()
    cbor.write_head(out, 4, n)  # array
    for o in objs:
        if o._FIELDS:
            for f in o._FIELDS:
                _record(out, o.name + ":" + f, o._vals[f])
        else:
            _record(out, o.name, o._value)
    return bytes(out)


def _record(out, name, value):
    # {0: name, 2|3|4: value}: senml.encode's {"n": name, "v"|"vs"|"vb": value}. A dirty
    # variable holds a coerced value (bool, int, float or str), never None.
    out.append(0xA2)  # map(2)
    out.append(0)  # n
    cbor.encode_into(out, name)
    t = type(value)
    out.append(4 if t is bool else 3 if t is str else 2)  # vb, vs, v
    cbor.encode_into(out, value)


# -- cloud -> device ----------------------------------------------------------------------


def decode_pack(payload, errors=None):
    """SenML records (list of dicts) of a cloud message; CBORError when malformed.

    errors: a list to check record by record (senml.decode): records that do not fit are
    left out and their SenMLError appended, so one bad record cannot hide the others.
    """
    return senml.decode(payload, max_items=_MAX_ITEMS, errors=errors)


def raw_pack(payload):
    """A cloud pack's maps as CBOR decoded them (their labels are checked by take_record);
    CBORError when malformed, SenMLError when not an array (as senml.decode)."""
    pack = cbor.loads(payload, max_items=_MAX_ITEMS)
    if not isinstance(pack, list):
        raise senml.SenMLError("SenML pack must be a CBOR array, got %s" % type(pack).__name__)
    return pack


def take_record(pack, i, errors):
    """Record i of a raw_pack as senml.decode(errors=...) would give it, or None (its
    SenMLError appended to errors); the map is dropped from the pack: a pack of records is
    made one record at a time, not next to the whole decoded pack."""
    raw = pack[i]
    pack[i] = None
    try:
        return senml.check_record(raw)
    except senml.SenMLError as exc:
        errors.append(exc)
        return None


def decode_command(payload):
    """(tag, args) of a `c/dw` message, with args checked for the known tags.

    Returns args as: THING_UPDATE / THING_DETACH -> thing id (str, maybe ""),
    LAST_VALUES_UPDATE -> bytes of a SenML pack, TIMEZONE_DOWN -> (offset, until);
    unknown tags -> the raw list (the caller ignores them).
    """
    msg = cbor.loads(payload, max_depth=_MAX_DEPTH, max_items=_MAX_ITEMS)
    if not isinstance(msg, Tag) or not isinstance(msg.value, list):
        raise ProtocolError("command is not a tagged array")
    tag, args = msg.tag, msg.value
    if tag == THING_UPDATE or tag == THING_DETACH:
        if len(args) != 1:
            raise ProtocolError("thing command with %d parameters" % len(args))
        return tag, check_thing_id(args[0])
    if tag == LAST_VALUES_UPDATE:
        if len(args) != 1 or type(args[0]) is not bytes:
            raise ProtocolError("LastValuesUpdate without a byte-string pack")
        return tag, args[0]
    if tag == TIMEZONE_DOWN:
        if len(args) != 2 or type(args[0]) is not int or type(args[1]) is not int:
            raise ProtocolError("TimezoneDown needs [offset, until] integers")
        return tag, (args[0], args[1])
    return tag, args
