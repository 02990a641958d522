"""MQTT 3.1.1 wire format: packet types, variable-length integers, packet builders.

Pure functions on bytes/bytearray/memoryview, no I/O. The client (tether.mqtt) builds
rarely sent packets (CONNECT, SUBSCRIBE) with fresh bytearrays and writes the frequent
ones (PUBLISH, acks, PINGREQ) into buffers it allocated once.

Fixed header: one byte `type << 4 | flags`, then the remaining length as a variable-length
integer of 1 to 4 bytes, 7 bits each, least significant first, bit 7 = "more follows":
    0   -> 00            127 -> 7f            128 -> 80 01
    200 -> c8 01         268435455 (the maximum) -> ff ff ff 7f
Example: PUBACK for packet id 0x1234 is `40 02 12 34`.
"""

from tether.compat import const

CONNECT = const(1)
CONNACK = const(2)
PUBLISH = const(3)
PUBACK = const(4)
PUBREC = const(5)
PUBREL = const(6)
PUBCOMP = const(7)
SUBSCRIBE = const(8)
SUBACK = const(9)
UNSUBSCRIBE = const(10)
UNSUBACK = const(11)
PINGREQ = const(12)
PINGRESP = const(13)
DISCONNECT = const(14)

MAX_REMAINING = const(268435455)  # 0xFFFFFF7F: the largest 4-byte variable-length integer

_PROTOCOL_LEVEL = const(4)  # MQTT 3.1.1
_FLAG_CLEAN = const(0x02)
_FLAG_WILL = const(0x04)
_FLAG_WILL_RETAIN = const(0x20)
_FLAG_PASSWORD = const(0x40)
_FLAG_USER = const(0x80)

PINGREQ_PACKET = b"\xc0\x00"
DISCONNECT_PACKET = b"\xe0\x00"

# CONNACK return codes 1..5 (MQTT 3.1.1 table 3.1), index = code.
CONNACK_REASONS = (
    "accepted",
    "unacceptable protocol version",
    "identifier rejected",
    "server unavailable",
    "bad user name or password",
    "not authorized",
)


class MQTTError(Exception):
    pass


class MQTTConnectError(MQTTError):
    """The broker refused CONNECT; `.code` is the CONNACK return code (1..5)."""

    def __init__(self, code):
        reason = CONNACK_REASONS[code] if 0 < code < len(CONNACK_REASONS) else "unknown code"
        super().__init__("connection refused (%d): %s" % (code, reason))
        self.code = code


def varint_size(n):
    """Bytes needed to encode n (0 <= n <= MAX_REMAINING) as a variable-length integer."""
    if n < 0x80:
        return 1
    if n < 0x4000:
        return 2
    if n < 0x200000:
        return 3
    if n <= MAX_REMAINING:
        return 4
    raise MQTTError("packet too large")


def put_varint(buf, off, n):
    """Write n at buf[off:] as a variable-length integer; return the offset after it."""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            buf[off] = b | 0x80
            off += 1
        else:
            buf[off] = b
            return off + 1


def header_size(buf, start, end):
    """Size of the fixed header at buf[start:end]: 2..5, 0 if more bytes are needed, or -1
    if the remaining length has a 5th continuation byte (a protocol error).

    Returns ints only so the receive path allocates nothing."""
    i = start + 1
    while i < end:
        if not buf[i] & 0x80:
            return i - start + 1
        i += 1
        if i - start > 4:
            return -1
    return 0


def remaining_length(buf, start):
    """Decode the remaining length of a fixed header whose size header_size() accepted."""
    n = 0
    shift = 0
    i = start + 1
    while True:
        b = buf[i]
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return n
        shift += 7
        i += 1


def _as_bytes(s):
    return s.encode() if isinstance(s, str) else bytes(s)


def _put_str(buf, off, data):
    n = len(data)
    buf[off] = n >> 8
    buf[off + 1] = n & 0xFF
    buf[off + 2 : off + 2 + n] = data
    return off + 2 + n


def _packet(first, body_len):
    """A bytearray sized for a packet: fixed header written; returns (buf, body offset)."""
    buf = bytearray(1 + varint_size(body_len) + body_len)
    buf[0] = first
    return buf, put_varint(buf, 1, body_len)


def connect_packet(client_id, keepalive, user=None, password=None, will=None, clean=True):
    """CONNECT. will is (topic, payload, qos, retain) or None.

    `10 0f 00 04 4d 51 54 54 04 02 00 3c 00 03 61 62 63` = client "abc", clean, keepalive 60.
    """
    fields = [_as_bytes(client_id)]
    flags = _FLAG_CLEAN if clean else 0
    if will:
        wtopic, wpayload, wqos, wretain = will
        if wqos not in (0, 1, 2):
            raise ValueError("will qos")
        flags |= _FLAG_WILL | (wqos << 3) | (_FLAG_WILL_RETAIN if wretain else 0)
        fields.append(_as_bytes(wtopic))
        fields.append(_as_bytes(wpayload))
    if user is not None:
        flags |= _FLAG_USER
        fields.append(_as_bytes(user))
        if password is not None:
            flags |= _FLAG_PASSWORD
            fields.append(_as_bytes(password))
    elif password is not None:
        raise ValueError("MQTT 3.1.1 needs a user name with a password")
    body = 10
    for f in fields:
        if len(f) > 0xFFFF:
            raise ValueError("field longer than 65535 bytes")
        body += 2 + len(f)
    buf, off = _packet(CONNECT << 4, body)
    off = _put_str(buf, off, b"MQTT")
    buf[off] = _PROTOCOL_LEVEL
    buf[off + 1] = flags
    buf[off + 2] = (keepalive >> 8) & 0xFF
    buf[off + 3] = keepalive & 0xFF
    off += 4
    for f in fields:
        off = _put_str(buf, off, f)
    return buf


def subscribe_packet(pid, topic, qos):
    """SUBSCRIBE with one filter: `82 len pid_hi pid_lo topic_len topic qos`."""
    topic = _as_bytes(topic)
    buf, off = _packet((SUBSCRIBE << 4) | 2, 2 + 2 + len(topic) + 1)
    buf[off] = pid >> 8
    buf[off + 1] = pid & 0xFF
    off = _put_str(buf, off + 2, topic)
    buf[off] = qos
    return buf


def unsubscribe_packet(pid, topic):
    """UNSUBSCRIBE with one filter: `a2 len pid_hi pid_lo topic_len topic`."""
    topic = _as_bytes(topic)
    buf, off = _packet((UNSUBSCRIBE << 4) | 2, 2 + 2 + len(topic))
    buf[off] = pid >> 8
    buf[off + 1] = pid & 0xFF
    _put_str(buf, off + 2, topic)
    return buf


def put_ack(buf, ptype, pid):
    """Write a 4-byte PUBACK/PUBREC/PUBREL/PUBCOMP into buf (PUBREL carries flags 0b0010)."""
    buf[0] = (ptype << 4) | (2 if ptype == PUBREL else 0)
    buf[1] = 2
    buf[2] = pid >> 8
    buf[3] = pid & 0xFF


def publish_header_size(topic_len, payload_len, qos):
    """Bytes of a PUBLISH before its payload (fixed header, topic, packet id)."""
    body = 2 + topic_len + (2 if qos else 0) + payload_len
    return 1 + varint_size(body) + body - payload_len


def put_publish_header(buf, topic, payload_len, qos, retain, dup, pid):
    """Write a PUBLISH up to its payload into buf; return the number of bytes written.

    `30 07 00 03 61 2f 62 68 69` = topic "a/b", payload "hi", QoS 0.
    `32 09 00 03 61 2f 62 00 01 68 69` = the same at QoS 1, packet id 1."""
    tlen = len(topic)
    body = 2 + tlen + (2 if qos else 0) + payload_len
    buf[0] = (PUBLISH << 4) | (8 if dup else 0) | (qos << 1) | (1 if retain else 0)
    off = put_varint(buf, 1, body)
    off = _put_str(buf, off, topic)
    if qos:
        buf[off] = pid >> 8
        buf[off + 1] = pid & 0xFF
        off += 2
    return off


def topic_name_error(buf, start, end):
    """Why buf[start:end] is not a topic name a broker may send, or None when it is one.

    MQTT 3.1.1 §1.5.3 and §4.7: well-formed UTF-8 without U+0000, at least one character,
    no wildcard. Checked byte by byte because MicroPython's str(b, "utf-8") accepts overlong
    forms, UTF-16 surrogates and code points past U+10FFFF that CPython refuses.
    """
    if start >= end:
        return "empty topic"
    i = start
    while i < end:
        c = buf[i]
        if c < 0x80:
            if c == 0 or c == 0x23 or c == 0x2B:  # NUL, '#', '+'
                return "NUL or wildcard in topic"
            i += 1
            continue
        # (continuation bytes, range of the first one) per RFC 3629 §4
        lo, hi = 0x80, 0xBF
        if 0xC2 <= c <= 0xDF:
            n = 1
        elif 0xE0 <= c <= 0xEF:
            n = 2
            if c == 0xE0:
                lo = 0xA0  # overlong
            elif c == 0xED:
                hi = 0x9F  # surrogates
        elif 0xF0 <= c <= 0xF4:
            n = 3
            if c == 0xF0:
                lo = 0x90  # overlong
            elif c == 0xF4:
                hi = 0x8F  # past U+10FFFF
        else:
            return "topic is not UTF-8"
        if i + n >= end:  # the sequence runs past the topic
            return "topic is not UTF-8"
        if not lo <= buf[i + 1] <= hi:
            return "topic is not UTF-8"
        for k in range(i + 2, i + n + 1):
            if not 0x80 <= buf[k] <= 0xBF:
                return "topic is not UTF-8"
        i += n + 1
    return None
