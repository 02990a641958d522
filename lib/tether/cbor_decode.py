"""The strict, bounded CBOR decoder behind tether.cbor.loads (RFC 8949).

tether.cbor imports it at the first loads(), so a device that only encodes does not hold it.
loads() there checks the input type, turns MemoryError and RuntimeError (C stack) into
CBORError and refuses trailing bytes; Decoder(buf, max_items, error, tag, simple) reads one
item with .item(max_depth). Every length is checked against the bytes left before anything
is allocated.

This half never imports tether.cbor (imports point only downward): loads() hands it the
classes it makes, CBORError (`error`), Tag and Simple, which stay in tether.cbor because an
encoder needs them without the decoder. Passed per call, not imported, they also cost this
module's globals nothing.
"""

import struct

from tether.compat import const

# The same numbers as in tether.cbor (RFC 8949 3.): private consts cost no RAM, and are
# folded into the bytecode of the hot loop instead of being looked up.
_UINT = const(0)
_NINT = const(1)
_BYTES = const(2)
_TEXT = const(3)
_ARRAY = const(4)
_MAP = const(5)
_TAG = const(6)
_SIMPLE = const(7)

_AI_1BYTE = const(24)
_AI_2BYTE = const(25)
_AI_4BYTE = const(26)
_AI_8BYTE = const(27)
_AI_INDEF = const(31)
_BREAK = const(0xFF)

_SIMPLE_FALSE = const(20)
_SIMPLE_TRUE = const(21)
_SIMPLE_NULL = const(22)
_SIMPLE_UNDEFINED = const(23)


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


class Decoder:
    # One instance per loads(): holds the cursor so helpers need no tuple returns. Eight
    # attributes, as many as before the three classes were handed in (the instance's table
    # stays at 8 slots): the nesting left travels in item()'s argument, and one initial
    # byte stands for major type and additional information.

    def __init__(self, buf, max_items, error, tag, simple):
        self.error = error  # tether.cbor's CBORError, Tag and Simple
        self.tag_cls = tag
        self.simple_cls = simple
        self.buf = buf
        self.pos = 0
        self.end = len(buf)
        self.items = max_items  # items still allowed
        self.ib = 0  # the initial byte of the last head read

    def need(self, n):
        # Every length is compared with what is left before it is used or allocated.
        if n > self.end - self.pos:
            raise self.error("truncated: %d bytes needed, %d left" % (n, self.end - self.pos))

    def head(self):
        """Read an initial byte and its argument (None: indefinite); returns the argument.

        The initial byte (major type, additional information) is left in self.ib rather
        than returned in a tuple: no allocation per item.
        """
        self.need(1)
        b = self.buf
        p = self.pos
        ib = b[p]
        p += 1
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
            if ib >> 5 in (_UINT, _NINT, _TAG):
                raise self.error("indefinite length not allowed for major type %d" % (ib >> 5))
            arg = None
        else:
            raise self.error("reserved additional information %d" % ai)
        self.pos = p
        self.ib = ib
        self.items -= 1
        if self.items < 0:
            raise self.error("more than the allowed number of items")
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
            raise self.error("invalid UTF-8 in text string")

    def indefinite_string(self, major):
        parts = []
        while True:
            self.need(1)
            if self.buf[self.pos] == _BREAK:
                self.pos += 1
                break
            n = self.head()
            if self.ib >> 5 != major or n is None:
                raise self.error("bad chunk in indefinite-length string")
            parts.append(self.string(major, n))
        return (b"" if major == _BYTES else "").join(parts)

    def at_break(self):
        self.need(1)
        if self.buf[self.pos] == _BREAK:
            self.pos += 1
            return True
        return False

    def item(self, depth):
        # depth: how many more levels of arrays, maps and tags may open from here.
        arg = self.head()
        major = self.ib >> 5
        if major == _UINT:
            return arg
        if major == _NINT:
            return -1 - arg
        if major == _BYTES or major == _TEXT:
            if arg is None:
                return self.indefinite_string(major)
            return self.string(major, arg)
        if major == _SIMPLE:
            return self.simple(self.ib & 0x1F, arg)
        # Containers and tags: check depth before descending, so absurd nesting costs
        # one head read, not one stack frame per level.
        if depth <= 0:
            raise self.error("nesting deeper than allowed")
        depth -= 1
        if major == _ARRAY:
            out = []
            if arg is None:
                while not self.at_break():
                    out.append(self.item(depth))
            else:
                # Each element needs at least one byte (and one item of the budget).
                self.need(arg)
                if arg > self.items:
                    raise self.error("more than the allowed number of items")
                for _ in range(arg):
                    out.append(self.item(depth))
            return out
        if major == _MAP:
            if arg is None:
                left = -1  # indefinite: until break
            elif arg > (self.end - self.pos) // 2 or 2 * arg > self.items:
                raise self.error("map of %d pairs cannot fit in the input" % arg)
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
                        raise self.error("repeated map key %r" % (key,))
                    out[key] = value
                except TypeError:
                    raise self.error("map key of unhashable type %s" % type(key).__name__)
            return out
        # _TAG
        return self.tag_cls(arg, self.item(depth))

    def simple(self, ai, arg):
        if ai < _AI_1BYTE:
            if arg == _SIMPLE_FALSE:
                return False
            if arg == _SIMPLE_TRUE:
                return True
            if arg == _SIMPLE_NULL or arg == _SIMPLE_UNDEFINED:
                return None
            return self.simple_cls(arg)
        if ai == _AI_1BYTE:
            if arg < 32:
                raise self.error("simple value %d in two-byte form" % arg)
            return self.simple_cls(arg)
        if ai == _AI_2BYTE:
            return _half_to_float(arg)
        # Floats are read from the raw bytes the head just consumed.
        if ai == _AI_4BYTE:
            return struct.unpack_from(">f", self.buf, self.pos - 4)[0]
        if ai == _AI_8BYTE:
            return struct.unpack_from(">d", self.buf, self.pos - 8)[0]
        raise self.error("unexpected break")
