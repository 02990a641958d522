"""Chunked transfer coding (RFC 9112 7.1) for tether.http_parse.Message.

Loaded at the first chunk of a reply that says `Transfer-Encoding: chunked`, so a client
that only meets Content-Length replies does not hold it in RAM. The body, after the head::

    1a;name=x\\r\\n         chunk: size in hex (extensions ignored) ...
    <26 bytes>\\r\\n        ... its data and CRLF
    0\\r\\n                last chunk, trailer fields (read and dropped), empty line
    \\r\\n

Every problem is an HTTPError: a bad size line, chunk data longer than its size line said,
the stream ending before the last chunk.
"""

from tether.compat import const
from tether.http_parse import HTTPError, _show

_MAX_CHUNK_HEX = const(8)  # chunks up to 4 GiB - 1: more than any board holds
_CHUNK_LINE = const(256)  # a chunk size line with its extensions
_CR = const(13)
_LF = const(10)
_HEX = b"0123456789abcdefABCDEF"


def parse_chunk_size(line):
    """b"1a;name=x" -> 26. Extensions are ignored; at most 8 hex digits."""
    i = line.find(b";")
    digits = (line if i < 0 else line[:i]).strip(b" \t")
    if not digits or len(digits) > _MAX_CHUNK_HEX:
        raise HTTPError("bad chunk size line: " + _show(line))
    for c in digits:
        if c not in _HEX:
            raise HTTPError("bad chunk size line: " + _show(line))
    return int(str(digits, "ascii"), 16)


async def expect_crlf(r):
    """The CRLF after chunk data, from the Reader r. HTTPError if other bytes come: the
    chunk was longer than its size line said (a lying length); HTTPError if the stream
    ends."""
    for want in (_CR, _LF):
        if r._pos == r._end and not await r._fill():
            raise HTTPError("body truncated: connection closed after a chunk's data")
        c = r._buf[r._pos]
        if c != want:
            if want == _CR and c == _LF:  # bare LF, tolerated like in lines
                r._pos += 1
                return
            raise HTTPError("chunk data longer than its size line said (no CRLF after it)")
        r._pos += 1


async def next_chunk(msg):
    """Read up to the next chunk's data: the CRLF that ends the previous chunk, then the
    size line. Returns the size; 0 is the last chunk, whose trailers are read and dropped
    and after which msg._finish() has been called."""
    r = msg._r
    if msg._crlf:
        await expect_crlf(r)
        msg._crlf = False
    size = parse_chunk_size(
        await r.readline(_CHUNK_LINE, "a chunk size line", "chunk size line too long")
    )
    if not size:
        await msg._fields({}, msg._max_head, "reply trailers too large")
        msg._finish()
    return size
