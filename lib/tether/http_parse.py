"""HTTP/1.1 wire format for tether.http: URLs, the request head, the reply's status line,
header fields, and a buffered reader with bounded lines. Chunked bodies: tether.http_chunked,
which imports from here (the subclass in tether.http loads it: no import circle).

Everything a server sends is checked here and every problem is an HTTPError, so a broken or
hostile server can make a request fail but cannot raise IndexError, ValueError or
UnicodeError in the caller. The reply, as RFC 9112 spells it::

    HTTP/1.1 201 Created\\r\\n             status line: version, 3-digit code, reason
    Content-Type: application/json\\r\\n   field: token ":" OWS value OWS
    Transfer-Encoding: chunked\\r\\n
    \\r\\n                                 end of the head
    <body>                                Content-Length bytes, chunked, or up to the close
"""

from tether.compat import const

_MAX_LENGTH_DIGITS = const(15)
_CR = const(13)
_SP = const(32)
_HT = const(9)
_DEL = const(127)

# RFC 9110 token characters (field names, methods)
_TCHAR = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_DIGITS = "0123456789"


class HTTPError(Exception):
    """Anything wrong with a reply or a request that is not the network's fault.

    A reply that is not HTTP/1.x, breaks a size limit or ends early (a truncated body); a URL
    or header the client refuses to send; a status that raise_for_status() refuses.
    `status` is the reply's status code when there was a status line, else None;
    `response` is the Response for raise_for_status() errors, else None.
    Network failures and timeouts are OSError, never HTTPError.
    """

    def __init__(self, message, status=None, response=None):
        super().__init__(message)
        self.status = status
        self.response = response


def _show(b):
    # A short printable piece of what the server sent, for error messages.
    return repr(bytes(b[:40]))


def _is_token(b):
    if not b:
        return False
    for c in b:
        if c not in _TCHAR:
            return False
    return True


def _check_text(b, what):
    # Field values and URLs: no control characters (CR/LF would inject a header).
    for c in b:
        if (c < _SP and c != _HT) or c == _DEL:
            raise HTTPError("%s has a control character: %s" % (what, _show(b)))


# --- requests ------------------------------------------------------------------------


def parse_url(url):
    """ "https://host:8443/p?q=1" -> (tls, host, port, target, host_header).

    http and https only; no user:password@ (pass an Authorization header); a fragment is
    dropped; IPv6 literals in brackets. The URL must already be percent-encoded.
    """
    if url.startswith("https://"):
        tls, rest, port = True, url[8:], 443
    elif url.startswith("http://"):
        tls, rest, port = False, url[7:], 80
    else:
        raise HTTPError("only http:// and https:// URLs are supported: %r" % url[:40])
    _check_text(rest.encode(), "URL")
    if " " in rest:
        raise HTTPError("URL has a space: percent-encode it (%20)")
    end = len(rest)
    for sep in "/?#":
        i = rest.find(sep)
        if 0 <= i < end:
            end = i
    authority, target = rest[:end], rest[end:]
    i = target.find("#")
    if i >= 0:
        target = target[:i]
    if not target.startswith("/"):
        target = "/" + target
    if "@" in authority:
        raise HTTPError("credentials in the URL are not sent: pass an Authorization header")
    host = authority
    if authority.startswith("["):
        i = authority.find("]")
        if i < 0:
            raise HTTPError("unclosed [ in the URL's host")
        host, tail = authority[1:i], authority[i + 1 :]
        if tail and not tail.startswith(":"):
            raise HTTPError("bad host in URL: %r" % authority)
        port_s = tail[1:] if tail else None
    elif ":" in authority:
        host, port_s = authority.split(":", 1)
    else:
        port_s = None
    if port_s is not None:
        if not port_s or len(port_s) > 5 or not all(c in _DIGITS for c in port_s):
            raise HTTPError("bad port in URL: %r" % authority)
        port = int(port_s)
        if not 0 < port < 65536:
            raise HTTPError("bad port in URL: %r" % authority)
    if not host:
        raise HTTPError("no host in URL: %r" % url[:40])
    default = 443 if tls else 80
    shown = "[%s]" % host if ":" in host else host
    host_header = shown if port == default else "%s:%d" % (shown, port)
    return tls, host, port, target, host_header


# Set by the client itself: a caller's value would desynchronise the framing.
_OWN = ("content-length", "transfer-encoding", "connection")


def build_head(method, target, host_header, headers, body_len):
    """The request head as bytes; HTTPError for a bad method or header."""
    if not _is_token(method.encode()):
        raise HTTPError("bad method %r" % method)
    have = {}
    if headers:
        for name, value in headers.items():
            low = name.lower()
            if not _is_token(name.encode()) or low in _OWN:
                raise HTTPError("header %r cannot be set (bad name or set by tether.http)" % name)
            value = str(value)
            _check_text(value.encode(), "header " + name)
            have[low] = (name, value)
    parts = [method, " ", target, " HTTP/1.1\r\n"]
    if "host" not in have:
        parts += ("Host: ", host_header, "\r\n")
    if "user-agent" not in have:
        parts.append("User-Agent: tether\r\n")
    for name, value in have.values():
        parts += (name, ": ", value, "\r\n")
    if body_len is not None:
        parts += ("Content-Length: ", str(body_len), "\r\n")
    parts.append("Connection: close\r\n\r\n")
    return "".join(parts).encode()


# --- replies -------------------------------------------------------------------------


def parse_status(line):
    """b"HTTP/1.1 200 OK" -> (200, "OK"). HTTP/1.0 and HTTP/1.1 replies only."""
    if (
        len(line) < 12
        or line[:7] != b"HTTP/1."
        or line[7] not in b"01"
        or line[8] != _SP
        or (len(line) > 12 and line[12] != _SP)
    ):
        raise HTTPError("not an HTTP/1.x status line: " + _show(line))
    code = line[9:12]
    for c in code:
        if c not in b"0123456789":
            raise HTTPError("bad status code: " + _show(line))
    status = int(str(code, "ascii"))
    if status < 100:
        raise HTTPError("bad status code: " + _show(line))
    try:
        reason = str(line[13:], "utf-8")
    except UnicodeError:  # the reason phrase means nothing to a client: do not fail on it
        reason = ""
    return status, reason


def error_text(body):
    """The start of an error reply's body (JSON error replies are short), for a message."""
    if not body:
        return "(no body)"
    try:
        return str(body[:200], "utf-8")
    except UnicodeError:
        return "%d bytes of body" % len(body)


def parse_header(line):
    """b"Content-Type: text/plain" -> ("content-type", "text/plain")."""
    if line[:1] in (b" ", b"\t"):
        raise HTTPError("folded header line (obsolete in HTTP/1.1): " + _show(line))
    i = line.find(b":")
    if i <= 0 or not _is_token(line[:i]):
        raise HTTPError("bad header line: " + _show(line))
    value = line[i + 1 :].strip(b" \t")
    _check_text(value, "header value")
    try:
        return str(line[:i], "ascii").lower(), str(value, "utf-8")
    except UnicodeError:
        raise HTTPError("header value is not UTF-8: " + _show(line))


def add_header(headers, name, value):
    """A repeated field is joined with ", " (RFC 9110 5.3), Set-Cookie included."""
    old = headers.get(name)
    headers[name] = value if old is None else old + ", " + value


def parse_length(value):
    """A Content-Length value -> int. "5, 5" is 5; differing values are an error."""
    n = None
    for part in value.split(","):
        part = part.strip()
        if not part or len(part) > _MAX_LENGTH_DIGITS or not all(c in _DIGITS for c in part):
            raise HTTPError("bad Content-Length: %r" % value[:40])
        v = int(part)
        if n is not None and v != n:
            raise HTTPError("conflicting Content-Length values: %r" % value[:40])
        n = v
    return n


class Reader:
    """Buffered reads over a stream with `await readinto(mv)` -> count (0 at end), such as
    tether.mqtt_stream.Transport. Lines are bounded; body bytes bypass the buffer when it
    is empty, so a streamed download lands in the caller's buffer without a copy."""

    def __init__(self, stream, size):
        self._s = stream
        self._buf = bytearray(size)
        self._mv = memoryview(self._buf)
        self._pos = self._end = 0

    async def _fill(self):
        n = await self._s.readinto(self._mv)
        self._pos, self._end = 0, n
        return n

    async def readline(self, limit, what, too_long):
        """One line without its line end (CRLF, or a bare LF as RFC 9112 2.2 allows), at
        most limit bytes with it. HTTPError(too_long) if longer; HTTPError if the stream
        ends first."""
        line = b""
        while True:
            if self._pos == self._end and not await self._fill():
                raise HTTPError("connection closed in the middle of " + what)
            pos = self._pos
            i = self._buf.find(b"\n", pos, self._end)
            stop = self._end if i < 0 else i + 1
            if len(line) + stop - pos > limit:
                raise HTTPError(too_long)
            self._pos = stop
            if i >= 0 and not line:  # the common case: the whole line is in the buffer
                if i > pos and self._buf[i - 1] == _CR:
                    i -= 1
                return bytes(self._mv[pos:i])
            line += self._mv[pos:stop]
            if i >= 0:
                n = len(line) - 1
                if n and line[n - 1] == _CR:
                    n -= 1
                return line[:n]

    async def readinto(self, mv):
        """Read at least one byte into mv (a memoryview); 0 at end of stream."""
        n = self._end - self._pos
        if not n:
            return await self._s.readinto(mv)
        if n > len(mv):
            n = len(mv)
        mv[:n] = self._mv[self._pos : self._pos + n]
        self._pos += n
        return n


# Body framing, Message._mode
DONE = const(0)
LENGTH = const(1)
CHUNKED = const(2)
TO_EOF = const(3)


class Message:
    """The reply's head and body framing over a Reader (`_r`); tether.http.Response adds
    the connection and the deadline, `_finish()`, called when the body is complete, and
    `_next_chunk()`, the next chunk's size (tether.http_chunked)."""

    def __init__(self, max_header_bytes, max_body_bytes):
        self.status = None
        self.reason = ""
        self.headers = {}
        self.body = None
        self.content_length = None
        self._max_head = max_header_bytes
        self._max_body = max_body_bytes
        self._r = None
        self._mode = DONE
        self._left = 0  # bytes left in the body (Content-Length) or in the current chunk
        self._crlf = False  # a chunk's data was read: its CRLF comes next
        self._got = 0

    async def _read_head(self):
        budget = self._max_head
        too_long = "reply headers larger than %d bytes (max_header_bytes)" % budget
        while True:
            line = await self._r.readline(budget, "the status line", too_long)
            budget -= len(line) + 2
            self.status, self.reason = parse_status(line)
            self.headers = {}
            budget = await self._fields(self.headers, budget, too_long)
            if self.status >= 200:
                break
            # 1xx interim replies (100 Continue...) are skipped: the final one follows

    async def _fields(self, into, budget, too_long):
        while True:
            line = await self._r.readline(budget, "the reply headers", too_long)
            budget -= len(line) + 2
            if not line:
                return budget
            name, value = parse_header(line)
            add_header(into, name, value)

    def _framing(self, method):
        h = self.headers
        status = self.status
        if "content-length" in h:
            try:
                self.content_length = parse_length(h["content-length"])
            except HTTPError as exc:
                exc.status = status
                raise
        if method == "HEAD" or status in (204, 304):
            return
        te = h.get("transfer-encoding")
        if te is not None:
            if te.strip().lower() != "chunked":
                raise HTTPError("unsupported Transfer-Encoding %r" % te[:40], self.status)
            self._mode = CHUNKED
        elif self.content_length is not None:
            if self.content_length:
                self._mode, self._left = LENGTH, self.content_length
        else:
            self._mode = TO_EOF
        n = self._left
        if self._mode == LENGTH and self._max_body is not None and n > self._max_body:
            raise HTTPError(
                "reply body of %d bytes is larger than max_body_bytes=%d" % (n, self._max_body),
                status,
            )

    async def _next(self, mv):
        # One read of body bytes into mv (a memoryview); 0 when the body is complete.
        mode = self._mode
        if mode == CHUNKED and not self._left:
            size = await self._next_chunk()  # tether.http.Response: http_chunked's reader
            if not size:
                return 0
            self._left = size
        if mode == DONE:
            return 0
        if mode != TO_EOF and self._left < len(mv):
            mv = mv[: self._left]
        n = await self._r.readinto(mv)
        if not n:
            if mode == TO_EOF:
                self._finish()
                return 0
            raise HTTPError(
                "body truncated: the connection closed with %d bytes of %s still to come"
                % (self._left, "the chunk" if mode == CHUNKED else "Content-Length"),
                self.status,
            )
        self._got += n
        if self._max_body is not None and self._got > self._max_body:
            raise HTTPError("reply body larger than max_body_bytes=%d" % self._max_body)
        if mode != TO_EOF:
            self._left -= n
            if mode == CHUNKED:
                self._crlf = not self._left
            elif not self._left:
                self._finish()
        return n
