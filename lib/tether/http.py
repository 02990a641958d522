"""A small HTTP/1.1 client over asyncio streams, for MicroPython and CPython.

For REST calls such as Astarte pairing (JSON with a Bearer token over TLS) and for firmware
downloads that do not fit in RAM::

    from tether import http
    resp = await http.post("https://api.example/v1/devices", json={"data": {}},
                           headers={"Authorization": "Bearer " + token}, ssl=ctx)
    resp.raise_for_status()
    secret = resp.json()["data"]["credentials_secret"]

    resp = await http.open_request("GET", url, ssl=ctx, timeout_ms=120000,
                                   max_body_bytes=None)
    async with resp:
        while True:
            n = await resp.read_into(buf)      # buf: your preallocated bytearray
            if not n:
                break
            flash.write(memoryview(buf)[:n])

Limits, said once:
- One request per connection: every request sends `Connection: close`.
- Redirects are never followed: a 3xx reply is returned as is (`headers["location"]`), and
  raise_for_status() raises HTTPError for it.
- One deadline, timeout_ms, covers the whole request: DNS, connect, TLS handshake, sending,
  the head and (also when streamed) the body. One timer task per request enforces it, not a
  wait_for per read.
- Errors: HTTPError (see tether.http_parse) for anything about the reply or the request's
  form, with `.status` when there was a status line; OSError for the network, with
  errno ETIMEDOUT (110) when the deadline passes. A TLS certificate the client refuses is
  an OSError whose message says why (tether.tlsctx.explain).
- https:// verifies the server (certificate and host name) through
  tether.tlsctx.client_context(cadata=...), as MQTT does. Build the context once and pass
  `ssl=ctx`: building one per request parses the CA each time.
- The loop is never blocked except by the DNS lookup of a host name on MicroPython (its
  getaddrinfo blocks; an IP address does not) and by the TLS handshake's own steps.
"""

import asyncio

from tether import http_parse, log
from tether.compat import const, ticks_diff, ticks_ms
from tether.http_parse import DONE, LENGTH, HTTPError, Message, Reader, build_head, parse_url
from tether.mqtt_stream import Transport, set_nodelay, sleep_ms

__all__ = [
    "HTTPError",
    "Response",
    "request",
    "open_request",
    "get",
    "post",
    "get_json",
    "post_json",
]

_log = log.getLogger("http")

_ETIMEDOUT = const(110)
_EIO = const(5)
_READ_BUF = const(512)  # the reader's buffer: head lines and chunk size lines
_ITER_CHUNK = const(1024)  # bytes per item of `async for chunk in resp`


class Response(Message):
    """A reply: `status` (int), `reason`, `headers` (dict, lower-case names, repeated
    fields joined with ", "), `body` (bytes; None while a streamed body is unread),
    `content_length` (int or None). Streamed: read_into(), read(), `async for`, aclose()."""

    def __init__(self, where, timeout_ms, max_header_bytes, max_body_bytes):
        Message.__init__(self, max_header_bytes, max_body_bytes)
        self._where = where  # "host:port", for messages (never the path: it may hold ids)
        self._ms = timeout_ms
        self._t = None
        self._expired = False
        self._waiter = None
        self._timer = asyncio.create_task(self._watch(timeout_ms))

    # ---- the deadline ----------------------------------------------------------------

    async def _watch(self, ms):
        await sleep_ms(ms)
        self._timer = None
        self._expired = True
        w = self._waiter
        if w is not None:
            w.cancel()  # suspended in one of our awaits: _failed() makes it ETIMEDOUT
        self._drop()

    def _enter(self):
        if self._expired:
            raise self._timeout()
        if self._t is None and self.status is not None:
            raise HTTPError("the response is closed")
        self._waiter = asyncio.current_task()

    def _timeout(self):
        return OSError(
            _ETIMEDOUT, "no complete reply from %s within %d ms" % (self._where, self._ms)
        )

    def _failed(self, exc):
        # Called with every exception out of a guarded section: close, and turn our own
        # cancellation (the deadline) into ETIMEDOUT.
        self._waiter = None
        self._drop()
        if isinstance(exc, HTTPError) and exc.status is None:
            exc.status = self.status
        if self._expired and isinstance(exc, asyncio.CancelledError):
            task = asyncio.current_task()
            if hasattr(task, "uncancel"):  # CPython >= 3.11 counts cancellations
                task.uncancel()
            return self._timeout()
        return exc

    def _drop(self):
        timer, self._timer = self._timer, None
        if timer is not None:
            try:
                if timer is not asyncio.current_task():
                    timer.cancel()
            except RuntimeError:  # CPython: no running loop (closed from a finaliser)
                pass
        t, self._t = self._t, None
        if t is not None:
            t.abort()

    # ---- the exchange ----------------------------------------------------------------

    async def _start(self, opener, host, port, ssl, server_hostname, head, body):
        self._enter()
        try:
            kw = {}
            if ssl is not None:
                kw["ssl"] = ssl
                kw["server_hostname"] = server_hostname
            try:
                reader, writer = await opener(host, port, **kw)
                self._t = t = Transport(reader, writer)
                if ssl is None:
                    set_nodelay(writer)  # head and body are two writes (tlsctx does TLS)
                t._w.write(head)  # on MicroPython the TLS handshake runs in these writes
                if body:
                    t._w.write(body)
                await t._w.drain()
                self._r = Reader(t, _READ_BUF)
                await self._read_head()
            except (OSError, ValueError) as exc:  # mbedTLS: ValueError for a refused certificate
                raise _explained(exc, ssl, self._where)
        except BaseException as exc:  # noqa: B036 - cancellation too: close, then re-raise
            raise self._failed(exc)
        self._waiter = None

    def _finish(self):
        self._mode = DONE
        self._drop()

    async def _next_chunk(self):
        # Chunked replies are the rarer kind: their code loads at the first chunk. A plain
        # import allocates nothing once the module is loaded.
        import tether.http_chunked

        return await tether.http_chunked.next_chunk(self)

    async def read_into(self, buf):
        """Read up to len(buf) body bytes into buf (a bytearray or memoryview); returns
        the count, 0 when the body is complete. Bounded by the request's deadline."""
        if self._mode == DONE:
            return 0
        self._enter()
        try:
            n = await self._next(buf if isinstance(buf, memoryview) else memoryview(buf))
        except BaseException as exc:  # noqa: B036
            raise self._failed(exc)
        self._waiter = None
        return n

    async def read(self):
        """The rest of the body as bytes (also sets `body`), bounded by max_body_bytes."""
        if self.body is not None:
            return self.body
        self._enter()
        try:
            if self._mode == LENGTH:  # known size: one buffer, filled in place
                n = self._left  # the rest, after any read_into()
                out = bytearray(n)
                mv = memoryview(out)
                pos = 0
                while pos < n:
                    pos += await self._next(mv[pos:])
            else:
                out = bytearray()
                scratch = bytearray(_READ_BUF)
                mv = memoryview(scratch)
                while True:
                    k = await self._next(mv)
                    if not k:
                        break
                    out += mv[:k]
        except BaseException as exc:  # noqa: B036
            raise self._failed(exc)
        self._waiter = None
        self.body = bytes(out)
        return self.body

    def __aiter__(self):
        return self

    async def __anext__(self):
        buf = bytearray(_ITER_CHUNK)
        n = await self.read_into(buf)
        if not n:
            raise StopAsyncIteration
        return bytes(memoryview(buf)[:n]) if n < _ITER_CHUNK else bytes(buf)

    def close(self):
        """Close the connection now; an unread body is dropped."""
        self._mode = DONE
        self._drop()

    async def aclose(self):
        self.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        self.close()

    # ---- the reply's contents ----------------------------------------------------------

    def text(self):
        """The body decoded as UTF-8 (HTTPError if it is not)."""
        try:
            return str(self.body or b"", "utf-8")
        except UnicodeError:
            raise HTTPError("reply body is not UTF-8 text", self.status)

    def json(self):
        """The body parsed as JSON (HTTPError if it is not JSON)."""
        import json

        try:
            return json.loads(self.text())
        except ValueError as exc:  # also CPython's JSONDecodeError and UnicodeError
            raise HTTPError("reply body is not JSON: %s" % exc, self.status)

    def raise_for_status(self):
        """HTTPError(status, response=self) unless the status is 2xx; a redirect names its
        Location (redirects are not followed). Returns self."""
        s = self.status
        if 200 <= s < 300:
            return self
        if 300 <= s < 400:
            msg = "redirect to %s not followed" % self.headers.get("location", "(no Location)")
        else:
            msg = http_parse.error_text(self.body)
        raise HTTPError("HTTP %d %s: %s" % (s, self.reason, msg), s, self)


def _explained(exc, ssl, where):
    """An error from connect/TLS/send/head as OSError, with the TLS cause spelled out."""
    if ssl is None:
        return exc
    from tether import tlsctx

    cause = tlsctx.explain(exc)
    if cause is None:
        if isinstance(exc, OSError):
            return exc
        cause = "handshake failed"
    # EIO, not the TLS library's code: CPython would turn errno 1 into PermissionError
    return OSError(_EIO, "TLS with %s failed: %s (%s)" % (where, cause, exc))


def _context(ssl, cadata, insecure):
    if ssl is not None and ssl is not True:
        return ssl
    from tether import tlsctx

    return tlsctx.client_context(cadata=cadata, insecure=insecure)


async def open_request(
    method,
    url,
    body=None,
    headers=None,
    json=None,
    timeout_ms=10000,
    ssl=None,
    max_header_bytes=4096,
    max_body_bytes=16384,
    open_connection=None,
    server_hostname=None,
    cadata=None,
    insecure=False,
):
    """Send a request and return the Response once its head is read; the body is left
    for read_into() / read() / `async for`. Close it (or `async with resp:`) when done.

    body: bytes-like or str (UTF-8); json: an object sent as JSON (not with body).
    ssl: a context for https (default: tlsctx.client_context(cadata, insecure=insecure));
    server_hostname: the name the certificate must carry (default: the URL's host).
    max_body_bytes: the most body bytes accepted, streamed or not; None for no limit.
    open_connection: replaces asyncio.open_connection (tests, proxies).
    """
    tls, host, port, target, host_header = parse_url(url)
    if json is not None:
        if body is not None:
            raise HTTPError("pass body or json, not both")
        import json as _json

        body = _json.dumps(json)
        headers = dict(headers) if headers else {}
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
    if isinstance(body, str):
        body = body.encode()
    method = method.upper()
    length = len(body) if body is not None else None
    if length is None and method in ("POST", "PUT", "PATCH"):
        length = 0
    head = build_head(method, target, host_header, headers, length)
    if tls:
        ssl = _context(ssl, cadata, insecure)
    elif ssl is not None:
        raise HTTPError("ssl= given for an http:// URL: use https://")
    resp = Response("%s:%d" % (host, port), timeout_ms, max_header_bytes, max_body_bytes)
    t0 = ticks_ms()
    await resp._start(
        open_connection or asyncio.open_connection,
        host,
        port,
        ssl,
        (server_hostname or host) if tls else None,
        head,
        body,
    )
    _log.debug(
        "%s %s:%d -> %d in %d ms", method, host, port, resp.status, ticks_diff(ticks_ms(), t0)
    )
    try:
        resp._framing(method)
    except HTTPError:
        resp.close()
        raise
    if resp._mode == DONE:
        resp.close()
        resp.body = b""
    return resp


async def request(method, url, stream=False, **kw):
    """Send a request and return the Response with its whole body in `body` (bytes).

    Takes open_request()'s arguments; stream=True is open_request() itself. The body is
    bounded by max_body_bytes (16 KB by default), the head by max_header_bytes."""
    resp = await open_request(method, url, **kw)
    if not stream:
        try:
            await resp.read()
        finally:
            resp.close()
    return resp


async def get(url, **kw):
    return await request("GET", url, **kw)


async def post(url, body=None, **kw):
    return await request("POST", url, body=body, **kw)


async def get_json(url, **kw):
    """GET a JSON document: its parsed body; HTTPError for a non-2xx reply or non-JSON."""
    return _json_reply(await request("GET", url, **_accept_json(kw)))


async def post_json(url, obj, **kw):
    """POST obj as JSON; the reply's parsed JSON (None for an empty body). HTTPError for a
    non-2xx reply (its .status and .response say which; the message quotes the body)."""
    return _json_reply(await request("POST", url, json=obj, **_accept_json(kw)))


def _accept_json(kw):
    h = dict(kw.get("headers") or {})
    if not any(k.lower() == "accept" for k in h):
        h["Accept"] = "application/json"
    kw["headers"] = h
    return kw


def _json_reply(resp):
    resp.raise_for_status()
    return resp.json() if resp.body else None
