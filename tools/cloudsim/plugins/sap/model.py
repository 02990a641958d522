"""SAP IoT's device model as far as the MQTT gateway checks it (protocols.md §4.2, §4.4).

A capability has an alternate id and typed properties in a fixed order; a device has
sensors, each allowed some capabilities for measures and some for commands. A measure
message names a capability and a sensor and carries a list of samples, each an array of
values in the capability's property order or an object keyed by property name. validate()
returns the samples as dicts (values converted to their types) or raises MeasureError with
the ack code and a message naming what is wrong.

Type rules (the real gateway's exact leniency is UNCONFIRMED; these are the emulator's):
integer/long: an integer (or a string of one) in the 32/64-bit range; float/double: a number
(or a string of one), not NaN/inf; boolean: true/false (or "true"/"false"); string: a
string; binary: a base64 string; date: epoch milliseconds or an ISO 8601 string.
"""

import base64
import datetime
import math

TYPES = ("integer", "long", "float", "double", "boolean", "string", "binary", "date")
INVALID = 400  # the ack code for a measure the model refuses
_RANGES = {"integer": 1 << 31, "long": 1 << 63}
_FLOAT_MAX = 3.4028234663852886e38


class MeasureError(ValueError):
    def __init__(self, message, code=INVALID):
        super().__init__(message)
        self.code = code
        self.message = message


class Capability:
    def __init__(self, alternate_id, properties):
        self.alternate_id = alternate_id
        self.properties = []
        for prop in properties:
            name, typ = (prop["name"], prop["dataType"]) if isinstance(prop, dict) else prop
            if typ not in TYPES:
                raise ValueError("property %s: type %r is not one of %s" % (name, typ, TYPES))
            self.properties.append((name, typ))
        self.types = dict(self.properties)

    def as_dict(self):
        return {
            "alternateId": self.alternate_id,
            "properties": [{"name": n, "dataType": t} for n, t in self.properties],
        }


def _parse(kind, text, why):
    try:
        return kind(text)
    except ValueError:
        raise ValueError(why) from None


def convert(typ, value):
    """-> value as the property type holds it, or raise ValueError saying why not."""
    if typ in ("integer", "long"):
        if isinstance(value, str):
            value = _parse(int, value.strip(), "not an integer")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("not an integer")
        if not -_RANGES[typ] <= value < _RANGES[typ]:
            raise ValueError("out of range for %s" % typ)
        return value
    if typ in ("float", "double"):
        if isinstance(value, str):
            value = _parse(float, value, "not a number")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError("not a number")
        value = float(value)
        if math.isnan(value) or math.isinf(value):
            raise ValueError("not a finite number")
        if typ == "float" and abs(value) > _FLOAT_MAX:
            raise ValueError("out of range for float")
        return value
    if typ == "boolean":
        if isinstance(value, bool):
            return value
        if value in ("true", "false"):
            return value == "true"
        raise ValueError("not a boolean")
    if typ == "string":
        if not isinstance(value, str):
            raise ValueError("not a string")
        return value
    if typ == "binary":
        if not isinstance(value, str):
            raise ValueError("not a base64 string")
        try:
            base64.b64decode(value, validate=True)
        except ValueError:
            raise ValueError("not base64") from None
        return value
    if typ == "date":
        if isinstance(value, bool):
            raise ValueError("not a date")
        if isinstance(value, (int, float)):
            return int(value)
        if isinstance(value, str):
            _parse(datetime.datetime.fromisoformat, value.replace("Z", "+00:00"), "not a date")
            return value
        raise ValueError("not a date")
    raise ValueError("unknown type %s" % typ)


def _sample(cap, sample, index):
    if isinstance(sample, list):
        if len(sample) != len(cap.properties):
            raise MeasureError(
                "measures[%d]: %d values for %d properties (%s)"
                % (
                    index,
                    len(sample),
                    len(cap.properties),
                    ", ".join(n for n, _ in cap.properties),
                )
            )
        pairs = list(zip((n for n, _ in cap.properties), sample))
    elif isinstance(sample, dict):
        pairs = [(k, v) for k, v in sample.items() if k != "_time"]
        unknown = [k for k, _ in pairs if k not in cap.types]
        if unknown:
            raise MeasureError(
                "measures[%d]: %s not a property of %s"
                % (index, ", ".join(unknown), cap.alternate_id)
            )
        if not pairs:
            raise MeasureError("measures[%d]: no property" % index)
    else:
        raise MeasureError("measures[%d]: neither an array nor an object" % index)
    out = {}
    for name, value in pairs:
        try:
            out[name] = convert(cap.types[name], value)
        except (ValueError, TypeError) as exc:
            raise MeasureError(
                "measures[%d].%s: %r is %s (%s)" % (index, name, value, exc, cap.types[name])
            ) from None
    if isinstance(sample, dict) and "_time" in sample:
        out["_time"] = sample["_time"]
    return out


def validate(capabilities, sensors, body):
    """-> (capability id, sensor id, [sample dict], timestamp or None) or raise MeasureError.

    capabilities: {alternate id: Capability}; sensors: the device's
    {sensor alternate id: {"measure": set, "command": set}}; body: the decoded JSON."""
    if not isinstance(body, dict):
        raise MeasureError("the message is not a JSON object")
    cap_id, sensor_id = body.get("capabilityAlternateId"), body.get("sensorAlternateId")
    if not isinstance(cap_id, str) or not cap_id:
        raise MeasureError("capabilityAlternateId missing")
    if not isinstance(sensor_id, str) or not sensor_id:
        raise MeasureError("sensorAlternateId missing")
    sensor = sensors.get(sensor_id)
    if sensor is None:
        raise MeasureError("sensor %s is not one of the device's" % sensor_id)
    cap = capabilities.get(cap_id)
    if cap is None or cap_id not in sensor["measure"]:
        raise MeasureError("capability %s is not a measure of sensor %s" % (cap_id, sensor_id))
    measures = body.get("measures")
    if not isinstance(measures, list) or not measures:
        raise MeasureError("measures must be a non-empty array of samples")
    samples = [_sample(cap, s, i) for i, s in enumerate(measures)]
    timestamp = body.get("timestamp")
    if timestamp is not None:
        try:
            timestamp = convert("date", timestamp)
        except (ValueError, TypeError):
            raise MeasureError("timestamp %r is not a date" % (timestamp,)) from None
    return cap_id, sensor_id, samples, timestamp


def check_command(capabilities, sensors, cap_id, sensor_id, command):
    """Raise ValueError unless the command fits the model (what the cloud's API checks)."""
    sensor = sensors.get(sensor_id)
    if sensor is None:
        raise ValueError("sensor %s is not one of the device's" % sensor_id)
    cap = capabilities.get(cap_id)
    if cap is None or cap_id not in sensor["command"]:
        raise ValueError("capability %s is not a command of sensor %s" % (cap_id, sensor_id))
    if not isinstance(command, dict) or not command:
        raise ValueError("a command is an object of property values")
    for name, value in command.items():
        if name not in cap.types:
            raise ValueError("%s is not a property of %s" % (name, cap_id))
        convert(cap.types[name], value)
