"""Property bags and reply topics of IoT Hub and DPS (protocols.md §2.3, §2.6, §2.11).

    encode(msg)                 -> "%24.mid=m0&%24.ct=application%2Fjson&alert=hi%20%26%20lo"
    decode(bag, msg)            fills a Message from a C2D bag ("$.x" and "%24.x" alike)
    split("$iothub/twin/res/200/?$rid=3&$version=7")  -> ("$iothub/twin/res/200", {...})
    status_rid(topic, prefix)   -> (200, "3", params) for a reply under `prefix`

Encoding is byte-for-byte what azure-iot-device 2.14 sends: system properties first, in the
SDK's order, `$` written as `%24`; then custom properties sorted by key, everything
percent-encoded with nothing safe (`%20`, not `+`). Topics arrive as bytes; parsing them
allocates only the pieces asked for.
"""

from tether.encoding import quote, unquote

# (attribute, bag key) in the order the SDK writes them.
_SYSTEM = (
    ("message_id", "%24.mid"),
    ("correlation_id", "%24.cid"),
    ("user_id", "%24.uid"),
    ("content_type", "%24.ct"),
    ("content_encoding", "%24.ce"),
    ("expiry_time_utc", "%24.exp"),
)
# C2D keys -> Message attributes; `$.to` (the hub's own routing) is dropped as the SDK does.
_FIELDS = {
    "$.mid": "message_id",
    "$.cid": "correlation_id",
    "$.uid": "user_id",
    "$.ct": "content_type",
    "$.ce": "content_encoding",
    "$.exp": "expiry_time_utc",
    "iothub-ack": "ack",
}


def encode(msg):
    """The property bag of a telemetry Message (str; "" when it has none)."""
    parts = []
    for attr, key in _SYSTEM:
        v = getattr(msg, attr, None)
        if v:
            parts.append(key + "=" + quote(str(v), ""))
    props = msg.custom_properties
    if props:
        seq = sorted([(str(k), str(v)) for k, v in props.items()])
        for i in range(1, len(seq)):
            if seq[i][0] == seq[i - 1][0]:
                raise ValueError("duplicate keys in custom properties")
        for k, v in seq:
            parts.append(quote(k, "") + "=" + quote(v, ""))
    return "&".join(parts)


def decode(bag, msg):
    """Fill `msg` (a Message) from a C2D property bag (str or bytes); returns msg.

    `key` alone is None, `key=` is "", `%24.x` and `$.x` are the same key. A piece that does
    not percent-decode to UTF-8 raises ValueError (the caller counts a bad message)."""
    if isinstance(bag, (bytes, bytearray, memoryview)):
        bag = bytes(bag).decode()
    if not bag:
        return msg
    for entry in bag.split("&"):
        if not entry:
            continue
        i = entry.find("=")
        if i < 0:
            key, value = unquote(entry), None
        else:
            key, value = unquote(entry[:i]), unquote(entry[i + 1 :])
        if key == "$.to":
            continue
        attr = _FIELDS.get(key)
        if attr is not None:
            setattr(msg, attr, value)
        else:
            msg.custom_properties[key] = value
    return msg


def split(topic):
    """(path, params) of a reply topic "path/?k=v&k2=v2"; keys and values percent-decoded
    (`%24rid` is `$rid`). No "?": (topic, {})."""
    if isinstance(topic, (bytes, bytearray, memoryview)):
        topic = bytes(topic).decode()
    i = topic.find("?")
    if i < 0:
        return topic, {}
    path = topic[: i - 1] if i and topic[i - 1] == "/" else topic[:i]
    params = {}
    for entry in topic[i + 1 :].split("&"):
        if entry:
            j = entry.find("=")
            if j < 0:
                params[unquote(entry)] = None
            else:
                params[unquote(entry[:j])] = unquote(entry[j + 1 :])
    return path, params


def status_rid(topic, prefix):
    """(status int, rid str or None, params) of `{prefix}{status}/?$rid=...`; ValueError
    when the topic does not have that shape."""
    path, params = split(topic)
    if not path.startswith(prefix):
        raise ValueError("not a reply topic")
    return int(path[len(prefix) :]), params.get("$rid"), params


def method_of(topic):
    """(method name, rid) of `$iothub/methods/POST/{name}/?$rid={rid}`; ValueError if not."""
    path, params = split(topic)
    pre = "$iothub/methods/POST/"
    if not path.startswith(pre) or len(path) == len(pre) or "$rid" not in params:
        raise ValueError("not a method request topic")
    return path[len(pre) :], params["$rid"]
