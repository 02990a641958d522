"""CBOR (RFC 8949) encoder and strict, bounded decoder for MicroPython and CPython.

The decoder is built for input from the network: every length is checked against the bytes
left *before* anything is allocated, nesting depth and item count are capped, and every
malformed input raises CBORError (a ValueError) and nothing else.

    >>> dumps(Tag(0x010700, ["1.4.1-async"])).hex()
    'da00010700816b312e342e312d6173796e63'
    >>> loads(bytes.fromhex("81a2006373773104f5"))
    [{0: 'sw1', 4: True}]

Decoded types: unsigned/negative int -> int, byte string -> bytes, text string -> str,
array -> list, map -> dict, tag -> Tag(tag, value) (no tag is interpreted: tag 2 stays
Tag(2, b"...")), false/true/null -> False/True/None, undefined -> None, other simple
values -> Simple(n), float16/32/64 -> float. A repeated map key is an error.

dumps() writes map keys in the dict's iteration order, which MicroPython does not keep
as insertion order: for byte-stable maps write the heads yourself with write_head() and
encode_into(), as tether.senml does.

On MicroPython the text-string check is the port's own UTF-8 validation, which rejects
malformed sequences but lets overlong forms and encoded surrogates through; CPython rejects
those too.
"""

import struct

from tether.compat import const

# Major types (the top three bits of the initial byte).
_UINT = const(0)
_NINT = const(1)
_BYTES = const(2)
_TEXT = const(3)
_ARRAY = const(4)
_MAP = const(5)
_TAG = const(6)
_SIMPLE = const(7)

_AI_1BYTE = const(24)  # additional information: argument follows in 1, 2, 4 or 8 bytes
_AI_2BYTE = const(25)
_AI_4BYTE = const(26)
_AI_8BYTE = const(27)
_AI_INDEF = const(31)  # indefinite length (major 2-5) or break (major 7)
_BREAK = const(0xFF)

_SIMPLE_FALSE = const(20)
_SIMPLE_TRUE = const(21)
_SIMPLE_NULL = const(22)
_SIMPLE_UNDEFINED = const(23)

# dumps() refuses deeper input so a self-referencing list cannot exhaust the C stack.
_MAX_ENCODE_DEPTH = const(32)


class CBORError(ValueError):
    """Malformed, oversized or unencodable CBOR."""


class Tag:
    """A tagged data item (major type 6): tag number and the value it wraps."""

    def __init__(self, tag, value):
        self.tag = tag
        self.value = value

    def __eq__(self, other):
        return isinstance(other, Tag) and self.tag == other.tag and self.value == other.value

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        # Hashable when its value is, so a Tag can be a map key like cbor2's CBORTag.
        return hash((self.tag, self.value))

    def __repr__(self):
        return "Tag(%d, %r)" % (self.tag, self.value)


class Simple:
    """A simple value other than false/true/null/undefined: 0..19 or 32..255."""

    def __init__(self, value):
        if not (isinstance(value, int) and (0 <= value < 20 or 32 <= value < 256)):
            raise CBORError("simple value must be 0..19 or 32..255: %r" % (value,))
        self.value = value

    def __eq__(self, other):
        return isinstance(other, Simple) and self.value == other.value

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return hash(self.value) ^ 0x5D1E

    def __repr__(self):
        return "Simple(%d)" % self.value


# ---------------------------------------------------------------------------- encoder


def _head(out, major, n):
    """Append the shortest (preferred) head for major type and argument n."""
    mt = major << 5
    if n < 24:
        out.append(mt | n)
    elif n < 0x100:
        out.append(mt | _AI_1BYTE)
        out.append(n)
    elif n < 0x10000:
        out.append(mt | _AI_2BYTE)
        out.append(n >> 8)
        out.append(n & 0xFF)
    elif n < 0x100000000:
        out.append(mt | _AI_4BYTE)
        out.append(n >> 24)
        out.append((n >> 16) & 0xFF)
        out.append((n >> 8) & 0xFF)
        out.append(n & 0xFF)
    else:
        out.append(mt | _AI_8BYTE)
        hi = n >> 32
        lo = n & 0xFFFFFFFF
        for x in (hi, lo):
            out.append(x >> 24)
            out.append((x >> 16) & 0xFF)
            out.append((x >> 8) & 0xFF)
            out.append(x & 0xFF)


def _encode(out, obj, depth):
    # `is` tests first: on CPython bool is an int, on MicroPython it is not.
    if obj is None:
        out.append(0xF6)
    elif obj is False:
        out.append(0xF4)
    elif obj is True:
        out.append(0xF5)
    elif isinstance(obj, int):
        if obj >= 0:
            if obj >= 0x10000000000000000:
                raise CBORError("integer too large for CBOR: %d" % obj)
            _head(out, _UINT, obj)
        else:
            n = -1 - obj
            if n >= 0x10000000000000000:
                raise CBORError("integer too small for CBOR: %d" % obj)
            _head(out, _NINT, n)
    elif isinstance(obj, float):
        out.append(0xFB)
        out.extend(struct.pack(">d", obj))
    elif isinstance(obj, str):
        data = obj.encode("utf-8")
        _head(out, _TEXT, len(data))
        out.extend(data)
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        if isinstance(obj, memoryview) and getattr(obj, "itemsize", 1) != 1:
            obj = bytes(obj)  # CPython multi-byte formats: len() counts items, not bytes
        _head(out, _BYTES, len(obj))
        out.extend(obj)
    elif isinstance(obj, (list, tuple)):
        if depth >= _MAX_ENCODE_DEPTH:
            raise CBORError("nesting deeper than %d" % _MAX_ENCODE_DEPTH)
        _head(out, _ARRAY, len(obj))
        for item in obj:
            _encode(out, item, depth + 1)
    elif isinstance(obj, dict):
        if depth >= _MAX_ENCODE_DEPTH:
            raise CBORError("nesting deeper than %d" % _MAX_ENCODE_DEPTH)
        _head(out, _MAP, len(obj))
        for k in obj:
            _encode(out, k, depth + 1)
            _encode(out, obj[k], depth + 1)
    elif isinstance(obj, Tag):
        if depth >= _MAX_ENCODE_DEPTH:
            raise CBORError("nesting deeper than %d" % _MAX_ENCODE_DEPTH)
        tag = obj.tag
        if not isinstance(tag, int) or tag is True or tag is False:
            raise CBORError("tag number must be an int: %r" % (tag,))
        if not 0 <= tag < 0x10000000000000000:
            raise CBORError("tag number out of range: %d" % tag)
        _head(out, _TAG, tag)
        _encode(out, obj.value, depth + 1)
    elif isinstance(obj, Simple):
        _head(out, _SIMPLE, obj.value)
    else:
        raise CBORError("cannot encode %s as CBOR" % type(obj).__name__)


def encode_into(out, obj):
    """Append the encoding of obj to the bytearray out (used by tether.senml)."""
    _encode(out, obj, 0)


def write_head(out, major, n):
    """Append a preferred-length head: for writers that stream their own containers."""
    _head(out, major, n)


def dumps(obj):
    """Encode obj (see module docstring for types) into bytes, shortest heads throughout."""
    out = bytearray()
    _encode(out, obj, 0)
    return bytes(out)


# ---------------------------------------------------------------------------- decoder


def _half_to_float(h):
    # float16 by hand: struct's 'e' format is optional on MicroPython.
    exp = (h >> 10) & 0x1F
    mant = h & 0x3FF
    if exp == 0:
        val = mant * 5.960464477539063e-08  # subnormal: mant * 2**-24, exact in float32
    elif exp == 0x1F:
        val = float("inf") if mant == 0 else float("nan")
    else:
        val = (mant + 1024) * (2.0 ** (exp - 25))
    return -val if h & 0x8000 else val


class _Decoder:
    # One instance per loads(): holds the cursor so helpers need no tuple returns.

    def __init__(self, buf, max_depth, max_items):
        self.buf = buf
        self.pos = 0
        self.end = len(buf)
        self.max_depth = max_depth
        self.items = max_items  # items still allowed
        self.major = 0  # of the last head read
        self.ai = 0

    def need(self, n):
        # Every length is compared with what is left before it is used or allocated.
        if n > self.end - self.pos:
            raise CBORError("truncated: %d bytes needed, %d left" % (n, self.end - self.pos))

    def head(self):
        """Read an initial byte and its argument (None: indefinite); returns the argument.

        Major type and additional information are left in self.major and self.ai rather
        than returned in a tuple: no allocation per item.
        """
        self.need(1)
        b = self.buf
        p = self.pos
        ib = b[p]
        p += 1
        major = ib >> 5
        ai = ib & 0x1F
        if ai < 24:
            arg = ai
        elif ai == _AI_1BYTE:
            self.need(2)
            arg = b[p]
            p += 1
        elif ai == _AI_2BYTE:
            self.need(3)
            arg = (b[p] << 8) | b[p + 1]
            p += 2
        elif ai == _AI_4BYTE:
            self.need(5)
            arg = (b[p] << 24) | (b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]
            p += 4
        elif ai == _AI_8BYTE:
            self.need(9)
            hi = (b[p] << 24) | (b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]
            lo = (b[p + 4] << 24) | (b[p + 5] << 16) | (b[p + 6] << 8) | b[p + 7]
            arg = (hi << 32) | lo
            p += 8
        elif ai == _AI_INDEF:
            if major in (_UINT, _NINT, _TAG):
                raise CBORError("indefinite length not allowed for major type %d" % major)
            arg = None
        else:
            raise CBORError("reserved additional information %d" % ai)
        self.pos = p
        self.major = major
        self.ai = ai
        self.items -= 1
        if self.items < 0:
            raise CBORError("more than the allowed number of items")
        return arg

    def string(self, major, n):
        self.need(n)
        p = self.pos
        self.pos = p + n
        chunk = self.buf[p : p + n]
        if major == _BYTES:
            return bytes(chunk)
        try:
            return str(chunk, "utf-8")
        except UnicodeError:
            raise CBORError("invalid UTF-8 in text string")

    def indefinite_string(self, major):
        parts = []
        while True:
            self.need(1)
            if self.buf[self.pos] == _BREAK:
                self.pos += 1
                break
            n = self.head()
            if self.major != major or n is None:
                raise CBORError("bad chunk in indefinite-length string")
            parts.append(self.string(major, n))
        return (b"" if major == _BYTES else "").join(parts)

    def at_break(self):
        self.need(1)
        if self.buf[self.pos] == _BREAK:
            self.pos += 1
            return True
        return False

    def item(self, depth):
        arg = self.head()
        major = self.major
        if major == _UINT:
            return arg
        if major == _NINT:
            return -1 - arg
        if major == _BYTES or major == _TEXT:
            if arg is None:
                return self.indefinite_string(major)
            return self.string(major, arg)
        if major == _SIMPLE:
            return self.simple(self.ai, arg)
        # Containers and tags: check depth before descending, so absurd nesting costs
        # one head read, not one stack frame per level.
        if depth >= self.max_depth:
            raise CBORError("nesting deeper than %d" % self.max_depth)
        depth += 1
        if major == _ARRAY:
            out = []
            if arg is None:
                while not self.at_break():
                    out.append(self.item(depth))
            else:
                # Each element needs at least one byte (and one item of the budget).
                self.need(arg)
                if arg > self.items:
                    raise CBORError("more than the allowed number of items")
                for _ in range(arg):
                    out.append(self.item(depth))
            return out
        if major == _MAP:
            if arg is None:
                left = -1  # indefinite: until break
            elif arg > (self.end - self.pos) // 2 or 2 * arg > self.items:
                raise CBORError("map of %d pairs cannot fit in the input" % arg)
            else:
                left = arg
            out = {}
            # Pairs are read inline (no helper call) to keep one stack frame per level.
            while left:
                if left < 0:
                    if self.at_break():
                        break
                else:
                    left -= 1
                key = self.item(depth)
                value = self.item(depth)
                try:
                    if key in out:
                        raise CBORError("repeated map key %r" % (key,))
                    out[key] = value
                except TypeError:
                    raise CBORError("map key of unhashable type %s" % type(key).__name__)
            return out
        # _TAG
        return Tag(arg, self.item(depth))

    def simple(self, ai, arg):
        if ai < _AI_1BYTE:
            if arg == _SIMPLE_FALSE:
                return False
            if arg == _SIMPLE_TRUE:
                return True
            if arg == _SIMPLE_NULL or arg == _SIMPLE_UNDEFINED:
                return None
            return Simple(arg)
        if ai == _AI_1BYTE:
            if arg < 32:
                raise CBORError("simple value %d in two-byte form" % arg)
            return Simple(arg)
        if ai == _AI_2BYTE:
            return _half_to_float(arg)
        # Floats are read from the raw bytes the head just consumed.
        if ai == _AI_4BYTE:
            return struct.unpack_from(">f", self.buf, self.pos - 4)[0]
        if ai == _AI_8BYTE:
            return struct.unpack_from(">d", self.buf, self.pos - 8)[0]
        raise CBORError("unexpected break")


def loads(buf, max_depth=16, max_items=4096):
    """Decode exactly one CBOR item filling buf (bytes, bytearray or memoryview).

    max_depth bounds the nesting of arrays, maps and tags; max_items bounds the number of
    data items (every element, key, value, tag and string chunk counts).
    """
    if not isinstance(buf, (bytes, bytearray, memoryview)):
        raise CBORError("expected bytes, got %s" % type(buf).__name__)
    try:
        mv = memoryview(buf)
        if getattr(mv, "itemsize", 1) != 1 or not getattr(mv, "contiguous", True):
            # CPython only (MicroPython's memoryview has neither attribute): wider items
            # (array('H')) or a strided view are copied once into plain bytes.
            mv = memoryview(mv.tobytes())
        dec = _Decoder(mv, max_depth, max_items)
        obj = dec.item(0)
    except (MemoryError, RuntimeError) as exc:
        # Out of RAM or C stack on a small device: still an input the caller rejects.
        # (CPython's RecursionError is a RuntimeError.)
        raise CBORError("input too large to decode: %s" % type(exc).__name__)
    if dec.pos != dec.end:
        raise CBORError("%d trailing bytes after the item" % (dec.end - dec.pos))
    return obj
