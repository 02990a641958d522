"""tether.http on both interpreters: the parser, the framing and the deadline, against an
in-memory server; and `live(args)`, the real-server cases that tests/test_http_server.py
runs on the unix port and in-process on CPython against servers it started on 127.0.0.1.
"""

import asyncio
import gc
import hashlib

import harness
from tether import http
from tether.compat import MICROPYTHON, ticks_diff, ticks_ms
from tether.http_chunked import parse_chunk_size
from tether.http_parse import (
    HTTPError,
    build_head,
    parse_header,
    parse_length,
    parse_status,
    parse_url,
)

# --- an in-memory server -------------------------------------------------------------


class MemServer:
    """Pass `srv.open_connection` as open_connection=. The reply bytes are served in
    pieces of at most max_read; then EOF, or nothing ever again if stall=True.
    `written` is what the client sent; `opened` the (host, port, ssl, server_hostname)."""

    def __init__(self, reply=b"", max_read=None, stall=False, delay_ms=0):
        self.reply = reply
        self.max_read = max_read
        self.stall = stall
        self.delay_ms = delay_ms
        self.written = bytearray()
        self.opened = []
        self.closed = False

    async def open_connection(self, host, port, ssl=None, server_hostname=None):
        self.opened.append((host, port, ssl, server_hostname))
        return _MemReader(self), _MemWriter(self)


class _MemReader:
    def __init__(self, srv):
        self._s = srv
        self._pos = 0

    async def readinto(self, buf):
        s = self._s
        if s.delay_ms:
            await asyncio.sleep(s.delay_ms / 1000)
        if self._pos >= len(s.reply):
            while s.stall and not s.closed:
                await asyncio.sleep(0.005)
            return 0
        n = min(len(buf), len(s.reply) - self._pos, s.max_read or len(buf))
        buf[:n] = s.reply[self._pos : self._pos + n]
        self._pos += n
        return n

    async def read(self, n=-1):
        buf = bytearray(n if n > 0 else 4096)
        k = await self.readinto(buf)
        return bytes(buf[:k])


class _MemWriter:
    def __init__(self, srv):
        self._s = srv

    def write(self, data):
        self._s.written += bytes(data)

    async def drain(self):
        await asyncio.sleep(0)

    def close(self):
        self._s.closed = True

    async def wait_closed(self):
        pass


def fetch(reply, method="GET", url="http://dev.test/x", **kw):
    srv = MemServer(reply, max_read=kw.pop("max_read", None), stall=kw.pop("stall", False))

    async def main():
        return await http.request(method, url, open_connection=srv.open_connection, **kw)

    return harness.run(main()), srv


def fails(reply, **kw):
    """The HTTPError that fetching reply raises; fails the test for anything else."""
    try:
        fetch(reply, **kw)
    except HTTPError as exc:
        return exc
    raise AssertionError("no HTTPError for %r" % (reply[:60],))


OK_JSON = (
    b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"a": [1]}\n'
)


# --- pure parsing --------------------------------------------------------------------


def test_status_line():
    assert parse_status(b"HTTP/1.1 200 OK") == (200, "OK")
    assert parse_status(b"HTTP/1.0 404 Not Found") == (404, "Not Found")
    assert parse_status(b"HTTP/1.1 204") == (204, "")
    assert parse_status(b"HTTP/1.1 500 \xff") == (500, "")
    for bad in (
        b"",
        b"HTTP/1.1 20 OK",
        b"HTTP/2 200 OK",
        b"HTTP/1.1 2x0 OK",
        b"ICY 200 OK",
        b"HTTP/1.1  200 OK",
        b"HTTP/1.1 200OK",
        b"HTTP/1.1 099 Low",
    ):
        harness.raises(HTTPError, parse_status, bad)


def test_header_lines():
    assert parse_header(b"Content-Type: text/plain") == ("content-type", "text/plain")
    assert parse_header(b"X-A:\t v w \t") == ("x-a", "v w")
    assert parse_header(b"Empty:") == ("empty", "")
    for bad in (
        b"no colon",
        b": value",
        b"Bad Name: v",
        b" folded: v",
        b"X: a\rb",
        b"X: \x00",
        b"X: \xff\xfe",
    ):
        harness.raises(HTTPError, parse_header, bad)


def test_chunk_sizes_and_lengths():
    assert parse_chunk_size(b"1a") == 26
    assert parse_chunk_size(b"1A;name=value") == 26
    assert parse_chunk_size(b"0") == 0
    assert parse_chunk_size(b"ffffffff") == 0xFFFFFFFF
    for bad in (b"", b";x", b"0x1a", b"+1", b"1_0", b"g", b"100000000", b"-1"):
        harness.raises(HTTPError, parse_chunk_size, bad)
    assert parse_length("0") == 0
    assert parse_length("12, 12") == 12
    for bad in ("", "-1", "1.5", "12, 13", "1e3", " ", "1234567890123456"):
        harness.raises(HTTPError, parse_length, bad)


def test_urls():
    assert parse_url("http://h/p?q=1#frag") == (False, "h", 80, "/p?q=1", "h")
    assert parse_url("https://h:8443") == (True, "h", 8443, "/", "h:8443")
    assert parse_url("https://h:443/a") == (True, "h", 443, "/a", "h")
    assert parse_url("http://[::1]:8080/x") == (False, "::1", 8080, "/x", "[::1]:8080")
    assert parse_url("http://h?x") == (False, "h", 80, "/?x", "h")
    for bad in (
        "ftp://h/",
        "h/p",
        "http:///p",
        "http://u:p@h/",
        "http://h:0/",
        "http://h:x/",
        "http://h:99999/",
        "http://h/a b",
        "http://h/\r\nX: y",
        "http://[::1/",
    ):
        harness.raises(HTTPError, parse_url, bad)


def test_request_head():
    head = build_head("POST", "/v1/r", "h:8080", {"Authorization": "Bearer t"}, 5)
    assert head == (
        b"POST /v1/r HTTP/1.1\r\nHost: h:8080\r\nUser-Agent: tether\r\n"
        b"Authorization: Bearer t\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"
    ), head
    assert b"\r\nhost: other\r\n" in build_head("GET", "/", "h", {"host": "other"}, None)
    for bad in (
        {"X": "a\r\nInjected: 1"},
        {"Bad Name": "v"},
        {"Content-Length": "3"},
        {"Connection": "keep-alive"},
    ):
        harness.raises(HTTPError, build_head, "GET", "/", "h", bad, None)
    harness.raises(HTTPError, build_head, "G T", "/", "h", None, None)


# --- whole exchanges in memory ---------------------------------------------------------


def test_get_json_content_length_in_small_reads():
    resp, srv = fetch(OK_JSON, max_read=3)
    assert (resp.status, resp.reason) == (200, "OK")
    assert resp.headers["content-type"] == "application/json"
    assert resp.json() == {"a": [1]}
    assert resp.body == b'{"a": [1]}\n'
    assert bytes(srv.written).startswith(b"GET /x HTTP/1.1\r\nHost: dev.test\r\n")
    assert srv.closed
    assert srv.opened == [("dev.test", 80, None, None)]


def test_post_json_sends_body_and_content_type():
    reply = b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}"
    resp, srv = fetch(reply, method="POST", json={"data": {"hw_id": "x"}})
    assert resp.status == 201
    w = bytes(srv.written)
    head, body = w.split(b"\r\n\r\n", 1)
    assert b"\r\nContent-Type: application/json" in head
    assert b"\r\nContent-Length: %d\r\n" % len(body) in head + b"\r\n"
    import json

    assert json.loads(body) == {"data": {"hw_id": "x"}}


def test_chunked_body_with_extensions_and_trailers():
    reply = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    for max_read in (None, 1, 4):
        resp, _ = fetch(reply, max_read=max_read)
        assert resp.body == b"hello world", resp.body


def test_body_until_close_and_no_body_statuses():
    resp, _ = fetch(b"HTTP/1.0 200 OK\r\n\r\nall of it", max_read=2)
    assert resp.body == b"all of it"
    resp, _ = fetch(b"HTTP/1.1 204 No Content\r\n\r\n", stall=True)
    assert resp.status == 204 and resp.body == b""
    resp, _ = fetch(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", method="HEAD", stall=True)
    assert resp.body == b"" and resp.content_length == 5


def test_interim_100_continue_is_skipped():
    resp, _ = fetch(b"HTTP/1.1 100 Continue\r\n\r\n" + OK_JSON)
    assert resp.status == 200 and resp.json() == {"a": [1]}


def test_repeated_headers_are_joined():
    resp, _ = fetch(b"HTTP/1.1 200 OK\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 0\r\n\r\n")
    assert resp.headers["x-a"] == "1, 2"


def test_error_status_is_returned_and_raise_for_status_quotes_the_body():
    body = b'{"errors":{"detail":"Not found"}}'
    resp, _ = fetch(b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    assert resp.status == 404 and resp.json()["errors"]["detail"] == "Not found"
    exc = harness.raises(HTTPError, resp.raise_for_status)
    assert exc.status == 404 and exc.response is resp
    assert "Not found" in str(exc), str(exc)


def test_redirect_is_returned_not_followed():
    reply = b"HTTP/1.1 302 Found\r\nLocation: http://evil.test/\r\nContent-Length: 0\r\n\r\n"
    resp, srv = fetch(reply)
    assert resp.status == 302 and len(srv.opened) == 1
    exc = harness.raises(HTTPError, resp.raise_for_status)
    assert "redirect to http://evil.test/ not followed" in str(exc) and exc.status == 302


def test_truncated_content_length_body():
    exc = fails(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort")
    assert "truncated" in str(exc) and exc.status == 200, str(exc)


def test_lying_chunk_lengths():
    short = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n"
    assert "longer than its size line" in str(fails(short))
    long_ = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nhello\r\n"
    assert "truncated" in str(fails(long_))
    assert "bad chunk size" in str(fails(long_ + b"0\r\n\r\n"))  # ate the next size line
    no_end = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3\r\n"
    assert "closed" in str(fails(no_end))


def test_oversize_headers_and_body():
    big = b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"p" * 5000 + b"\r\n\r\n"
    assert "max_header_bytes" in str(fails(big))
    many = b"HTTP/1.1 200 OK\r\n" + b"X-P: 1234567890\r\n" * 300 + b"\r\n"
    assert "max_header_bytes" in str(fails(many))
    fetch(
        b"HTTP/1.1 200 OK\r\n" + b"X-P: 1234567890\r\n" * 300 + b"Content-Length: 0\r\n\r\n",
        max_header_bytes=8000,
    )
    declared = b"HTTP/1.1 200 OK\r\nContent-Length: 20000\r\n\r\n"
    exc = fails(declared, stall=True)  # refused from the header, before reading
    assert "max_body_bytes" in str(exc) and exc.status == 200
    chunk = b"400\r\n" + b"x" * 1024 + b"\r\n"
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 2 + b"0\r\n\r\n"
    exc = fails(chunked, max_body_bytes=1500)
    assert "max_body_bytes" in str(exc)


def test_deadline_covers_a_server_that_never_answers():
    srv = MemServer(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", stall=True)

    async def main():
        t0 = ticks_ms()
        try:
            await http.get("http://h/", open_connection=srv.open_connection, timeout_ms=150)
        except OSError as exc:
            return exc, ticks_diff(ticks_ms(), t0)
        raise AssertionError("no timeout")

    exc, ms = harness.run(main())
    assert exc.errno == 110 and "150 ms" in str(exc), exc
    assert 140 <= ms < 1000, ms
    assert srv.closed


def test_deadline_spans_the_whole_slow_body():
    # each read is quick (20 ms) but the whole body is not: one deadline, not per read
    srv = MemServer(b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n" + b"x" * 40, max_read=1)
    srv.delay_ms = 20

    async def main():
        try:
            await http.get("http://h/", open_connection=srv.open_connection, timeout_ms=300)
        except OSError as exc:
            return exc
        raise AssertionError("no timeout")

    assert harness.run(main()).errno == 110


def test_timeout_does_not_leak_a_cancellation():
    srv = MemServer(b"", stall=True)

    async def main():
        try:
            await http.get("http://h/", open_connection=srv.open_connection, timeout_ms=50)
        except OSError:
            pass
        await asyncio.sleep(0.05)  # the task must not be cancelled again later
        return "alive"

    assert harness.run(main()) == "alive"


def test_cancelled_by_the_caller_closes_and_stays_cancelled():
    srv = MemServer(b"", stall=True)

    async def main():
        task = asyncio.create_task(
            http.get("http://h/", open_connection=srv.open_connection, timeout_ms=5000)
        )
        await asyncio.sleep(0.05)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return "cancelled"
        return "not cancelled"

    assert harness.run(main()) == "cancelled"
    assert srv.closed


def test_streamed_body_into_a_small_buffer():
    data = bytes((i * 7 + (i >> 8)) & 0xFF for i in range(5000))
    for reply in (
        b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + data,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"7d0\r\n"
        + data[:2000]
        + b"\r\nbb8\r\n"
        + data[2000:]
        + b"\r\n0\r\n\r\n",
    ):
        srv = MemServer(reply, max_read=700)

        async def main(srv):
            resp = await http.open_request("GET", "http://h/", open_connection=srv.open_connection)
            got = bytearray()
            buf = bytearray(256)
            async with resp:
                while True:
                    n = await resp.read_into(buf)
                    if not n:
                        break
                    assert n <= 256
                    got.extend(buf[:n])
            return got

        assert harness.run(main(srv)) == data
        assert srv.closed


def test_read_after_read_into_returns_the_rest():
    for reply in (
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n0\r\n\r\n",
    ):
        srv = MemServer(reply)

        async def main(srv):
            resp = await http.open_request("GET", "http://h/", open_connection=srv.open_connection)
            first = bytearray(4)
            await resp.read_into(first)
            return bytes(first), await resp.read()

        assert harness.run(main(srv)) == (b"0123", b"456789")


def test_async_iteration():
    srv = MemServer(b"HTTP/1.1 200 OK\r\nContent-Length: 3000\r\n\r\n" + b"z" * 3000)

    async def main():
        resp = await http.open_request("GET", "http://h/", open_connection=srv.open_connection)
        parts = []
        async for chunk in resp:
            parts.append(len(chunk))
        return parts

    parts = harness.run(main())
    assert sum(parts) == 3000 and max(parts) <= 1024


def test_post_json_and_get_json_helpers():
    srv = MemServer(b'HTTP/1.1 422 Unprocessable\r\nContent-Length: 17\r\n\r\n{"errors": "dup"}')

    async def main():
        try:
            await http.post_json("http://h/r", {"a": 1}, open_connection=srv.open_connection)
        except HTTPError as exc:
            return exc

    exc = harness.run(main())
    assert exc.status == 422 and exc.response.json() == {"errors": "dup"}
    assert b"\r\nAccept: application/json\r\n" in bytes(srv.written)
    srv = MemServer(OK_JSON)
    got = harness.run(http.get_json("http://h/", open_connection=srv.open_connection))
    assert got == {"a": [1]}


def test_non_json_body_is_an_http_error():
    resp, _ = fetch(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n<ht>")
    assert harness.raises(HTTPError, resp.json).status == 200
    resp, _ = fetch(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n\xff\xfe")
    harness.raises(HTTPError, resp.text)


# --- the malformed-reply corpus: only HTTPError escapes -----------------------------

CORPUS = (
    b"",
    b"\r\n",
    b"HTTP/1.1",
    b"HTTP/1.1 200 OK",
    b"HTTP/1.1 200 OK\r\n",
    b"HTTP/1.1 200 OK\r\nX",
    b"HTTP/1.1 200 OK\r\nX: 1\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\nab",
    b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: \xd9\xa1\r\n\r\nab",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nab",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n123456789\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * 300 + b"\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nbad trailer\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n",
    b"HTTP/1.1 200 OK\r\n\x00: x\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nA\xff: x\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nA: \xc3\x28\r\n\r\n",
    b"\x16\x03\x01\x00\x05hello",  # a TLS record on a plain connection
    b"SSH-2.0-OpenSSH_9.2\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\n" * 400,
    b"HTTP/1.1 " + b"9" * 5000,
)


def test_malformed_corpus_raises_only_http_error():
    for reply in CORPUS:
        for max_read in (None, 1, 7):
            try:
                fetch(reply, max_read=max_read)
            except HTTPError:
                continue
            raise AssertionError("accepted: %r" % (reply[:60],))


def test_random_mutations_raise_only_http_error():
    rng = harness.Rng(2024)
    seeds = (
        OK_JSON,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    for _ in range(300):
        b = rng.pick(seeds)
        for _ in range(1 + rng.below(4)):
            op = rng.below(3)
            pos = rng.below(len(b))
            if op == 0:
                b = b[:pos] + bytes([rng.below(256)]) + b[pos + 1 :]
            elif op == 1:
                b = b[:pos] + b[pos + 1 + rng.below(8) :]
            else:
                b = b[:pos] + rng.bytes(1 + rng.below(6)) + b[pos:]
        try:
            fetch(bytes(b), max_read=1 + rng.below(9))
        except HTTPError:
            pass


# --- live cases (real servers; started by tests/test_http_server.py) ----------------


def _heap():
    if not MICROPYTHON:
        return None
    gc.collect()
    return gc.mem_alloc()


async def _case(name, args, ctxs):
    base, tbase = args["http"], args["https"]
    ctx = ctxs.get("good")
    if name == "get_json":
        r = await http.get(base + "/json")
        return {"status": r.status, "json": r.json()}
    if name == "post_json_bearer":
        r = await http.post(
            tbase + "/echo",
            json={"data": {"hw_id": "abc"}},
            ssl=ctx,
            headers={"Authorization": "Bearer tok-1"},
        )
        return {"status": r.status, "json": r.json()}
    if name == "post_json_helper":
        got = await http.post_json(tbase + "/echo", {"data": {"csr": "PEM"}}, ssl=ctx)
        return {"json": got}
    if name == "error_json":
        r = await http.post(base + "/error?status=422", json={"x": 1})
        return {"status": r.status, "json": r.json()}
    if name == "chunked":
        r = await http.get(tbase + "/chunked?n=3000", ssl=ctx)
        return {"status": r.status, "len": len(r.body), "sha": _sha(r.body)}
    if name == "redirect":
        r = await http.get(base + "/redirect")
        try:
            r.raise_for_status()
        except http.HTTPError as exc:
            return {"status": r.status, "location": r.headers.get("location"), "msg": str(exc)}
    if name in (
        "truncated",
        "lying_chunk_short",
        "lying_chunk_long",
        "huge_headers",
        "huge_body",
        "huge_body_chunked",
    ):
        await http.get(base + "/raw/" + name)
    if name == "slow":
        await http.get(base + "/slow", timeout_ms=400)
    if name == "stall_tls":  # a TLS server that never answers: the deadline covers it
        await http.get(args["stall_tls"] + "/", ssl=ctx, timeout_ms=400)
    if name == "until_close_tls":  # no framing: the body ends when the TLS connection does
        r = await http.get(tbase + "/raw/until_close", ssl=ctx)
        return {"status": r.status, "body": r.text()}
    if name in ("other_ca", "wrong_host"):
        await http.get(args[name] + "/json", ssl=ctx)
    if name == "insecure":
        r = await http.get(args["other_ca"] + "/json", insecure=True)
        return {"status": r.status}
    if name == "download":
        return await _download(tbase + "/big?n=%d" % args["big"], ctx, 512)
    if name == "download_plain":
        return await _download(base + "/big?n=%d&chunked=1" % args["big"], None, 256)
    raise AssertionError("case %s returned nothing" % name)


def _sha(data):
    h = hashlib.sha256()
    h.update(data)
    return "".join("%02x" % b for b in h.digest())


async def _download(url, ctx, size):
    buf = bytearray(size)
    mv = memoryview(buf)
    h = hashlib.sha256()
    total = 0
    peak = 0
    heap0 = _heap()
    resp = await http.open_request("GET", url, ssl=ctx, timeout_ms=20000, max_body_bytes=None)
    async with resp:
        while True:
            n = await resp.read_into(buf)
            if not n:
                break
            h.update(mv[:n])
            total += n
            if MICROPYTHON and total % 16384 < size:
                peak = max(peak, gc.mem_alloc() - heap0)
    return {
        "status": resp.status,
        "len": total,
        "sha": "".join("%02x" % b for b in h.digest()),
        "heap_growth": peak if MICROPYTHON else None,
    }


def live(args):
    """Run the named cases against the servers in args; {case: result dict}. A result has
    "error" (the type name), "errno", "message" when the case raised."""
    from tether import tlsctx

    def rd(p):
        with open(p, "rb") as f:
            return f.read()

    ctxs = {"good": tlsctx.client_context(cadata=rd(args["ca"]))}
    out = {}

    async def one(name):
        t0 = ticks_ms()
        try:
            res = await _case(name, args, ctxs)
        except Exception as exc:  # the test checks which type each case must raise
            res = {
                "error": type(exc).__name__,
                "errno": exc.errno if isinstance(exc, OSError) else None,
                "status": getattr(exc, "status", None),
                "message": str(exc),
                "cause": tlsctx.explain(exc),
            }
        res["ms"] = ticks_diff(ticks_ms(), t0)
        return res

    for name in args["cases"]:
        out[name] = asyncio.run(one(name))
    return out
