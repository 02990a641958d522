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
        # != needs no __ne__: both interpreters answer it from __eq__.
        return isinstance(other, Tag) and self.tag == other.tag and self.value == other.value

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


def loads(buf, max_depth=16, max_items=4096):
    """Decode exactly one CBOR item filling buf (bytes, bytearray or memoryview).

    max_depth bounds the nesting of arrays, maps and tags; max_items bounds the number of
    data items (every element, key, value, tag and string chunk counts).
    """
    if not isinstance(buf, (bytes, bytearray, memoryview)):
        raise CBORError("expected bytes, got %s" % type(buf).__name__)
    try:
        # The decoder is its own module, loaded at the first loads(): a device that only
        # encodes (or only imports Tag and CBORError) does not hold it in RAM. Inside the
        # try: loading it can run out of RAM too. A plain import (not "from ... import")
        # allocates nothing once the module is loaded.
        import tether.cbor_decode

        mv = memoryview(buf)
        if getattr(mv, "itemsize", 1) != 1 or not getattr(mv, "contiguous", True):
            # CPython only (MicroPython's memoryview has neither attribute): wider items
            # (array('H')) or a strided view are copied once into plain bytes.
            mv = memoryview(mv.tobytes())
        # The decoder is handed the classes it makes: it never imports this module back.
        dec = tether.cbor_decode.Decoder(mv, max_items, CBORError, Tag, Simple)
        obj = dec.item(max_depth)
    except (MemoryError, RuntimeError) as exc:
        # Out of RAM or C stack on a small device: still an input the caller rejects.
        # (CPython's RecursionError is a RuntimeError.)
        raise CBORError("input too large to decode: %s" % type(exc).__name__)
    if dec.pos != dec.end:
        raise CBORError("%d trailing bytes after the item" % (dec.end - dec.pos))
    return obj
