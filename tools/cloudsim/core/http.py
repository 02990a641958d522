"""A small HTTP/1.1 server for the dashboard and the plug-ins' HTTPS APIs (no framework).

One request per connection (Connection: close), bodies by Content-Length (no chunked
uploads: 411). Routes come from the plug-ins (plugin.Route); a handler returns a Response,
a dict/list (JSON 200) or None ({"ok": true}), or raises HttpError.
"""

import asyncio
import json
import logging
import urllib.parse

log = logging.getLogger("cloudsim.http")

_MAX_BODY = 256 * 1024
_REASONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    411: "Length Required",
    415: "Unsupported Media Type",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class HttpError(Exception):
    """Refuse a request: `status`, and a JSON body ({"error": message} unless given)."""

    def __init__(self, status, message, body=None):
        super().__init__(message)
        self.status = status
        self.body = body if body is not None else {"error": message}


class Response:
    def __init__(self, status=200, json_body=None, body=b"", content_type=None, headers=None):
        if json_body is not None:
            body = json.dumps(json_body).encode()
            content_type = content_type or "application/json"
        self.status = status
        self.body = body
        self.content_type = content_type or "application/octet-stream"
        self.headers = dict(headers or {})


class Request:
    """method, path, params (from the route), query (first value of each), headers
    (lower-case names), body (bytes), peer_cert (DER of a verified client certificate),
    listener (its name)."""

    def __init__(self, method, path, query, headers, body, peer_cert, listener):
        self.method = method
        self.path = path
        self.params = {}
        self.query = query
        self.headers = headers
        self.body = body
        self.peer_cert = peer_cert
        self.listener = listener

    def json(self):
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            raise HttpError(400, "body is not JSON")

    def bearer(self):
        """The token of an `Authorization: Bearer ...` header, or None."""
        kind, _, token = self.headers.get("authorization", "").partition(" ")
        return token.strip() if kind.lower() == "bearer" and token.strip() else None


class HttpServer:
    def __init__(self, name, host, port, ssl=None, routes=(), json_posts_only=False):
        self.name = name
        self.host = host
        self.wanted_port = port
        self.ssl = ssl
        self.routes = list(routes)
        self.json_posts_only = json_posts_only  # the dashboard: no cross-site form posts
        self.port = None
        self._server = None

    async def start(self):
        self._server = await asyncio.start_server(
            self._serve, self.host, self.wanted_port, ssl=self.ssl, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self):
        self._server.close()
        try:
            await asyncio.wait_for(self._server.wait_closed(), 2)
        except asyncio.TimeoutError:
            pass

    async def _serve(self, reader, writer):
        try:
            resp = await asyncio.wait_for(self._handle(reader, writer), 10)
        except HttpError as exc:
            resp = Response(exc.status, exc.body)
        except Exception as exc:  # a bad request must never take the emulator down
            log.warning("%s request failed: %r", self.name, exc)
            resp = Response(500, {"error": repr(exc)})
        head = "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n" % (
            resp.status,
            _REASONS.get(resp.status, ""),
            resp.content_type,
            len(resp.body),
        )
        for name, value in resp.headers.items():
            head += "%s: %s\r\n" % (name, value)
        head += "Cache-Control: no-store\r\nConnection: close\r\n\r\n"
        try:
            writer.write(head.encode() + resp.body)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _handle(self, reader, writer):
        line = await reader.readline()
        try:
            method, target, _ = line.decode("latin-1").split(" ", 2)
        except ValueError:
            raise HttpError(400, "bad request line")
        headers = {}
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        path, _, query = target.partition("?")
        path = urllib.parse.unquote(path)
        if "chunked" in headers.get("transfer-encoding", ""):
            raise HttpError(411, "send a Content-Length")
        length = int(headers.get("content-length", "0") or 0)
        if length > _MAX_BODY:
            raise HttpError(400, "body too large")
        if method == "POST" and self.json_posts_only:
            if not headers.get("content-type", "").startswith("application/json"):
                raise HttpError(415, "POST needs Content-Type: application/json")
        body = await reader.readexactly(length) if length else b""
        ssl_object = writer.get_extra_info("ssl_object")
        peer_cert = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        query = {k: v[0] for k, v in urllib.parse.parse_qs(query).items()}
        req = Request(method, path, query, headers, body, peer_cert, self.name)
        parts = path.strip("/").split("/") if path.strip("/") else []
        methods = set()
        for route in self.routes:
            params = route.match(parts)
            if params is None:
                continue
            if route.method != method:
                methods.add(route.method)
                continue
            req.params = params
            result = await route.handler(req)
            if isinstance(result, Response):
                return result
            return Response(200, result if result is not None else {"ok": True})
        if methods:
            raise HttpError(405, "%s only" % " or ".join(sorted(methods)))
        raise HttpError(404, "not found")
