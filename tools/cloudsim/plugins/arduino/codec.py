"""Arduino cloud payloads, encoded and decoded with PyPI cbor2.

Deliberately independent of tether.cbor / tether.senml: every end-to-end test is then also a
compatibility test between two implementations.
"""

import cbor2

# Command tags (protocols.md §1.4).
OTA_BEGIN_UP = 0x010000
OTA_UPDATE_DOWN = 0x010100
OTA_PROGRESS_UP = 0x010200
THING_BEGIN = 0x010300
THING_UPDATE = 0x010400
LAST_VALUES_BEGIN = 0x010500
LAST_VALUES_UPDATE = 0x010600
DEVICE_BEGIN = 0x010700
TIMEZONE_UP = 0x010800
TIMEZONE_DOWN = 0x010900
THING_DETACH = 0x011000
DEVICE_NET_CONFIG_UP = 0x011100
WIFI_FW_VERSION_UP = 0x012014

COMMAND_NAMES = {
    OTA_BEGIN_UP: "OtaBegin",
    OTA_UPDATE_DOWN: "OtaUpdate",
    OTA_PROGRESS_UP: "OtaProgress",
    THING_BEGIN: "ThingBegin",
    THING_UPDATE: "ThingUpdate",
    LAST_VALUES_BEGIN: "LastValuesBegin",
    LAST_VALUES_UPDATE: "LastValuesUpdate",
    DEVICE_BEGIN: "DeviceBegin",
    TIMEZONE_UP: "TimezoneUp",
    TIMEZONE_DOWN: "TimezoneDown",
    THING_DETACH: "ThingDetach",
    DEVICE_NET_CONFIG_UP: "DeviceNetConfig",
    WIFI_FW_VERSION_UP: "WiFiFWVersion",
}

# SenML labels (RFC 8428 §6).
_LABELS = {
    -1: "bver",
    -2: "bn",
    -3: "bt",
    -4: "bu",
    -5: "bv",
    -6: "bs",
    0: "n",
    1: "u",
    2: "v",
    3: "vs",
    4: "vb",
    5: "s",
    6: "t",
    7: "ut",
    8: "vd",
}
_KEYS = {name: label for label, name in _LABELS.items()}


class PayloadError(ValueError):
    """A payload the cloud cannot make sense of."""


def encode_command(tag, params):
    return cbor2.dumps(cbor2.CBORTag(tag, list(params)))


def decode_command(payload):
    """-> (tag, params list). Raises PayloadError."""
    try:
        item = cbor2.loads(payload)
    except Exception as exc:
        raise PayloadError("not CBOR: %s" % exc)
    if not isinstance(item, cbor2.CBORTag) or not isinstance(item.value, (list, tuple)):
        raise PayloadError("not a tagged array: %r" % (item,))
    return item.tag, list(item.value)


def decode_senml(payload):
    """-> list of {"name", "value", "t"} with base names resolved. Raises PayloadError."""
    try:
        pack = cbor2.loads(payload)
    except Exception as exc:
        raise PayloadError("not CBOR: %s" % exc)
    if not isinstance(pack, (list, tuple)):
        raise PayloadError("SenML pack is not an array")
    out = []
    base_name, base_time = "", 0
    for rec in pack:
        if not isinstance(rec, dict):
            raise PayloadError("SenML record is not a map")
        named = {_LABELS[k]: v for k, v in rec.items() if k in _LABELS}
        if "bn" in named:
            base_name = named["bn"]
        if "bt" in named:
            base_time = named["bt"]
        name = base_name + named.get("n", "")
        value = None
        for key in ("v", "vs", "vb", "vd"):
            if key in named:
                value = named[key]
                break
        if not name:
            raise PayloadError("SenML record without a name")
        rec_t = named.get("t")
        out.append(
            {"name": name, "value": value, "t": None if rec_t is None else base_time + rec_t}
        )
    return out


def senml_record(name, value):
    """One cloud->device record: {0: name, <2|3|4|8>: value} (no bn, see protocols.md §1.4)."""
    if isinstance(value, bool):
        return {0: name, 4: value}
    if isinstance(value, (int, float)):
        return {0: name, 2: value}
    if isinstance(value, str):
        return {0: name, 3: value}
    if isinstance(value, (bytes, bytearray)):
        return {0: name, 8: bytes(value)}
    raise PayloadError("cannot encode %r as SenML" % (value,))


def encode_senml(values):
    """values: iterable of (name, value) -> SenML-CBOR pack (definite array, as the cloud)."""
    return cbor2.dumps([senml_record(n, v) for n, v in values])


def flatten(name, value):
    """A composite value (dict of fields) becomes "name:field" records; a scalar stays one."""
    if isinstance(value, dict):
        return [("%s:%s" % (name, k), v) for k, v in value.items()]
    return [(name, value)]


def is_get_last_values(payload):
    try:
        records = decode_senml(payload)
    except PayloadError:
        return False
    return any(r["name"] == "r:m" and r["value"] == "getLastValues" for r in records)
