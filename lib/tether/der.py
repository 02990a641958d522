"""A minimal, bounded DER reader and writer, and PEM armour, for keys, CSRs and certificates.

Reader: ``read_tlv(buf, pos, end)`` gives ``(tag, value_start, value_end)`` without copying;
``children`` lists the items inside a constructed value, ``whole`` the items of the one
SEQUENCE that must fill a buffer. Every length is checked against the end of its parent
before it is used, so truncated, overlong or indefinite-length input raises DERError and
nothing else. Only one-byte tags exist here (all that X.509, PKCS#1/#8/#10 and SEC1 use).

Writer: each function returns the complete encoding of one item as bytes, so a structure is
written as nested calls, e.g. ``seq(integer(1), octets(d), explicit(0, oid(P256)))``.

    30 06 02 01 01 04 01 2a   <- seq(integer(1), octets(b"*"))
"""

from binascii import a2b_base64, b2a_base64

from tether.compat import const

_MAX_LEN_BYTES = const(4)  # long-form lengths up to 4 GB: larger cannot fit any board's RAM
_PEM_COLS = const(64)

SEQUENCE = const(0x30)
SET = const(0x31)
INTEGER = const(0x02)
BIT_STRING = const(0x03)
OCTET_STRING = const(0x04)
NULL = const(0x05)
OID = const(0x06)
UTF8_STRING = const(0x0C)
PRINTABLE_STRING = const(0x13)


class DERError(ValueError):
    """Malformed DER or PEM: truncated, a length past its parent, an unexpected tag."""


# ---------------------------------------------------------------- reader


def read_tlv(buf, pos, end=None):
    """(tag, value_start, value_end) of the item at pos; DERError unless it fits before end."""
    if end is None:
        end = len(buf)
    if pos + 2 > end:
        raise DERError("truncated")
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise DERError("multi-byte tag")
    n = buf[pos + 1]
    pos += 2
    if n & 0x80:
        k = n & 0x7F
        if k == 0:
            raise DERError("indefinite length (BER, not DER)")
        if k > _MAX_LEN_BYTES or pos + k > end:
            raise DERError("bad length")
        n = 0
        for i in range(k):
            n = (n << 8) | buf[pos + i]
        pos += k
    if n > end - pos:
        raise DERError("length past end")
    return tag, pos, pos + n


def children(buf, start, end):
    """List of (tag, value_start, value_end) of the items between start and end."""
    out = []
    while start < end:
        item = read_tlv(buf, start, end)
        out.append(item)
        start = item[2]
    return out


def whole(buf, tag=SEQUENCE):
    """The children of the one item (a SEQUENCE by default) that must fill buf exactly."""
    t, s, e = read_tlv(buf, 0, len(buf))
    if t != tag or e != len(buf):
        raise DERError("not one DER SEQUENCE" if tag == SEQUENCE else "unexpected item")
    return children(buf, s, e)


def expect(item, tag):
    """item (a tag, start, end triple) if its tag is tag, else DERError."""
    if item[0] != tag:
        raise DERError("expected tag 0x%02x, found 0x%02x" % (tag, item[0]))
    return item


def int_bytes(buf, s, e):
    """The big-endian magnitude of an INTEGER's value bytes, leading zeros stripped."""
    while s < e - 1 and buf[s] == 0:
        s += 1
    return bytes(buf[s:e])


def read_int(buf, s, e):
    """A non-negative INTEGER's value as an int; DERError if it is empty or negative."""
    if e <= s:
        raise DERError("empty INTEGER")
    if buf[s] & 0x80:
        raise DERError("negative INTEGER")
    return int.from_bytes(bytes(buf[s:e]), "big")


def read_oid(buf, s, e):
    """The dotted text of an OBJECT IDENTIFIER's value bytes, e.g. "1.2.840.10045.2.1"."""
    if e <= s or buf[e - 1] & 0x80:
        raise DERError("bad OID")
    parts = []
    v = 0
    for i in range(s, e):
        if v == 0 and buf[i] == 0x80:
            raise DERError("bad OID")  # a non-minimal sub-identifier
        v = (v << 7) | (buf[i] & 0x7F)
        if not buf[i] & 0x80:
            if not parts:
                first = 2 if v >= 80 else v // 40
                parts.append(first)
                v -= first * 40
            parts.append(v)
            v = 0
    return ".".join(str(p) for p in parts)


def value(buf, item):
    """The value bytes of an item (a copy)."""
    return bytes(buf[item[1] : item[2]])


# ---------------------------------------------------------------- writer


def _length(n):
    if n < 0x80:
        return bytes((n,))
    b = n.to_bytes((len("%x" % n) + 1) // 2, "big")
    return bytes((0x80 | len(b),)) + b


def tlv(tag, body):
    """One item: tag, DER length, body."""
    return bytes((tag,)) + _length(len(body)) + bytes(body)


def seq(*parts):
    return tlv(SEQUENCE, b"".join(parts))


def set_(*parts):
    """A SET of already-encoded parts (kept in the order given: callers pass one part or
    parts already in DER order)."""
    return tlv(SET, b"".join(parts))


def integer(n):
    """A non-negative INTEGER, minimal, with a 00 byte when the top bit would read negative."""
    if n < 0:
        raise DERError("negative INTEGER not supported")
    b = n.to_bytes((len("%x" % n) + 1) // 2, "big")
    if b[0] & 0x80:
        b = b"\x00" + b
    return tlv(INTEGER, b)


def oid(dotted):
    """An OBJECT IDENTIFIER from its dotted text."""
    nums = [int(p) for p in dotted.split(".")]
    if len(nums) < 2 or nums[0] > 2 or (nums[0] < 2 and nums[1] >= 40):
        raise DERError("bad OID " + dotted)
    nums = [nums[0] * 40 + nums[1]] + nums[2:]
    out = bytearray()
    for v in nums:
        chunk = [v & 0x7F]
        v >>= 7
        while v:
            chunk.append(0x80 | (v & 0x7F))
            v >>= 7
        chunk.reverse()
        out.extend(bytes(chunk))
    return tlv(OID, out)


def bitstring(b, unused=0):
    return tlv(BIT_STRING, bytes((unused,)) + bytes(b))


def octets(b):
    return tlv(OCTET_STRING, b)


def utf8(s):
    return tlv(UTF8_STRING, s.encode())


def printable(s):
    return tlv(PRINTABLE_STRING, s.encode())


def null():
    return b"\x05\x00"


def explicit(n, inner):
    """A context-specific constructed tag [n] around inner (EXPLICIT tagging)."""
    return tlv(0xA0 | n, inner)


# ---------------------------------------------------------------- PEM


def _text(data):
    if isinstance(data, str):
        return data
    try:
        return bytes(data).decode()
    except (UnicodeError, ValueError):
        raise DERError("PEM data is not text")


def is_pem(data):
    """True if data (str or bytes) looks like PEM rather than DER."""
    if isinstance(data, str):
        return "-----BEGIN " in data
    data = bytes(data)
    return bool(data) and data[0] != SEQUENCE and b"-----BEGIN " in data


def pem_blocks(data):
    """[(label, der), ...] for every PEM block in data, in order; DERError if none is whole.

    Text outside blocks is skipped (OpenSSL writes "Bag Attributes" and such there). A block
    with RFC 1421 headers (an encrypted legacy key: Proc-Type, DEK-Info) is refused.
    """
    out = []
    label = None
    body = []
    for line in _text(data).split("\n"):
        line = line.strip()
        if line.startswith("-----BEGIN ") and line.endswith("-----"):
            label = line[11:-5]
            body = []
        elif line.startswith("-----END ") and line.endswith("-----"):
            if label is None:
                continue
            if line[9:-5] != label:
                raise DERError("PEM block %s ends as %s" % (label, line[9:-5]))
            try:
                der = a2b_base64("".join(body))
            except ValueError:
                raise DERError("PEM block %s has corrupt base64" % label)
            out.append((label, der))
            label = None
        elif label is not None and line:
            if ":" in line:
                raise DERError("PEM block %s has headers (encrypted?)" % label)
            body.append(line)
    if not out:
        raise DERError("no complete PEM block")
    return out


def pem_decode(data, label=None):
    """(label, der) of the first PEM block in data, or of the first one with this label."""
    for lab, der in pem_blocks(data):
        if label is None or lab == label:
            return lab, der
    raise DERError("no PEM block labelled " + label)


def pem_encode(label, der):
    """PEM text: BEGIN line, base64 in 64-column lines, END line, trailing newline."""
    b64 = b2a_base64(der).decode().replace("\n", "")
    lines = [b64[i : i + _PEM_COLS] for i in range(0, len(b64), _PEM_COLS)]
    return "-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label, "\n".join(lines), label)
