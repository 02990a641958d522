"""zlib (RFC 1950) streams: bounded inflate, and a writer that needs no compressor.

    >>> decompress(store(b"hello"), max_size=1024)
    b'hello'
    >>> store(b"hello").hex()        # header, one final stored block, Adler-32
    '7801010500faff68656c6c6f062c0215'

decompress() inflates through MicroPython's `deflate` module or CPython's `zlib`, refuses
output beyond `max_size` (a zip bomb stops there, it is never inflated in full) and checks
the stream the same way on both: a bad checksum, corrupt data, a truncated stream or bytes
after its end raise ZlibError (a ValueError), nothing else. Formats: "zlib" (RFC 1950),
"gzip" (RFC 1952) and "raw" (RFC 1951 deflate).

The boards' MicroPython has decompression only, so store() writes a valid zlib stream of
stored (uncompressed) deflate blocks with its Adler-32: 11 bytes plus 5 per 64 KiB of data
more than the input, and any inflater (CPython zlib, pako, the cloud's) reads it.
compress() uses a real compressor where the port has one and falls back to store().

Memory: inflating needs the window the stream declares (32 KiB for wbits 15, the default
of every compressor) on top of the output; `wbits` caps it on MicroPython.
"""

from tether.compat import MICROPYTHON, const

_ADLER_MOD = const(65521)
_NMAX = const(5552)  # bytes summed before the sums can overflow 32 bits (zlib's NMAX)
_STORED_MAX = const(65535)  # bytes in one stored block
_CHUNK = const(512)

_FORMATS = ("zlib", "gzip", "raw")


class ZlibError(ValueError):
    """Corrupt, truncated, oversized or trailing-data compressed input."""


def _adler32(data, value=1):
    """Adler-32 of data, continuing from value: the same number as zlib.adler32."""
    a = value & 0xFFFF
    b = (value >> 16) & 0xFFFF
    mv = memoryview(data)
    n = len(mv)
    i = 0
    # Sums run NMAX bytes between reductions: one modulo per block, not per byte.
    while True:
        j = min(i + _NMAX, n)
        for c in mv[i:j]:
            a += c
            b += a
        a %= _ADLER_MOD  # also reduces a start value beyond the modulus, as zlib does
        b %= _ADLER_MOD
        i = j
        if i >= n:
            return (b << 16) | a


if MICROPYTHON:
    adler32 = _adler32
else:  # CPython's own is 100 times faster; _adler32 is tested against it
    from zlib import adler32


def store(data):
    """A zlib stream holding data in stored blocks (no compression): bytes."""
    mv = memoryview(data)
    n = len(mv)
    out = bytearray(b"\x78\x01")  # deflate, 32 KiB window, level "fastest"; 0x7801 % 31 == 0
    i = 0
    while True:
        size = min(n - i, _STORED_MAX)
        final = i + size >= n
        out.append(1 if final else 0)  # BFINAL, BTYPE=00 (stored), byte-aligned
        out.extend(bytes((size & 0xFF, size >> 8, ~size & 0xFF, (~size >> 8) & 0xFF)))
        out.extend(mv[i : i + size])
        i += size
        if final:
            break
    s = adler32(mv)
    out.extend(bytes((s >> 24, (s >> 16) & 0xFF, (s >> 8) & 0xFF, s & 0xFF)))
    return bytes(out)


def compress(data):
    """A zlib stream of data: compressed where the port can, else store(data)."""
    if not MICROPYTHON:
        import zlib as _z

        return _z.compress(bytes(data))
    try:
        import io

        import deflate

        out = io.BytesIO()
        w = deflate.DeflateIO(out, deflate.ZLIB)
        w.write(data)
        w.close()
        return out.getvalue()
    except (ImportError, AttributeError, OSError):
        # Built without MICROPY_PY_DEFLATE_COMPRESS: DeflateIO has no write().
        return store(data)


def _check_args(fmt, max_size):
    if fmt not in _FORMATS:
        raise ValueError("format must be one of %s" % (_FORMATS,))
    if not isinstance(max_size, int) or max_size < 0:
        raise ValueError("max_size must be an int >= 0")


def _inflate_cpython(zl, data, fmt, max_size, wbits):
    w = wbits or 15
    w = w + 16 if fmt == "gzip" else (-w if fmt == "raw" else w)
    try:
        d = zl.decompressobj(w)
        # One byte more than allowed tells "exactly max_size" from "too big".
        out = d.decompress(data, max_size + 1)
    except zl.error as exc:
        raise ZlibError("corrupt %s stream: %s" % (fmt, exc))
    if len(out) > max_size:
        raise ZlibError("inflated data exceeds max_size %d" % max_size)
    if not d.eof:
        raise ZlibError("truncated %s stream" % fmt)
    if d.unused_data:
        raise ZlibError("%d bytes after the end of the %s stream" % (len(d.unused_data), fmt))
    return out


def _inflate_micropython(deflate, data, fmt, max_size, wbits):
    import io

    kind = deflate.ZLIB if fmt == "zlib" else (deflate.GZIP if fmt == "gzip" else deflate.RAW)
    src = io.BytesIO(data)
    out = bytearray()
    buf = bytearray(_CHUNK)
    try:
        d = deflate.DeflateIO(src, kind, wbits)
        while True:
            k = d.readinto(buf)
            if not k:
                break
            if len(out) + k > max_size:
                raise ZlibError("inflated data exceeds max_size %d" % max_size)
            out.extend(buf if k == _CHUNK else memoryview(buf)[:k])
    except EOFError:
        raise ZlibError("truncated %s stream" % fmt)
    except OSError as exc:  # EINVAL: bad header, bad block or checksum mismatch
        raise ZlibError("corrupt %s stream: %s" % (fmt, exc))
    # DeflateIO reads its source byte by byte, so the source position is the stream's end.
    left = len(data) - src.tell()
    if left:
        raise ZlibError("%d bytes after the end of the %s stream" % (left, fmt))
    # The port checks gzip's CRC-32 but not its ISIZE trailer (length mod 2^32); zlib does.
    if fmt == "gzip" and int.from_bytes(data[-4:], "little") != len(out) & 0xFFFFFFFF:
        raise ZlibError("corrupt gzip stream: incorrect length check")
    return bytes(out)


def decompress(data, max_size=65536, format="zlib", wbits=0):
    """Inflate a whole zlib/gzip/raw deflate stream into at most max_size bytes.

    wbits: window bits (8..15); 0 takes the stream header's (raw streams: 15).
    """
    _check_args(format, max_size)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ZlibError("expected bytes, got %s" % type(data).__name__)
    data = bytes(data)
    try:
        # By interpreter, not by trying imports: PyPI has an unrelated `deflate` package.
        if not MICROPYTHON:
            import zlib as zl

            return _inflate_cpython(zl, data, format, max_size, wbits)
        import deflate

        if format == "raw" and not wbits:
            wbits = 15
        return _inflate_micropython(deflate, data, format, max_size, wbits)
    except MemoryError:
        raise ZlibError("out of memory inflating (window or output too large)")
