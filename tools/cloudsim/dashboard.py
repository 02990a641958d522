"""The web dashboard and its JSON API, served on the emulator's loop (no framework).

    GET  /                      the page (static/index.html, app.js, style.css)
    GET  /api/state             devices, things, values, numeric history, recent events, knobs
    POST /api/write             {"thing_id", "name", "value"}   value may be a dict (composite)
    POST /api/knobs             {"reply_delay_s", "mute", "malformed", "refuse_connect"}
    POST /api/device/{id}/drop | /detach | /timezone {"offset", "until"}

POST bodies must be JSON with Content-Type application/json: a browser cannot send that
cross-origin without a CORS preflight, which this server never grants.
"""

import asyncio
import json
import logging
from pathlib import Path

from . import codec

log = logging.getLogger("cloudsim.dashboard")

STATIC = Path(__file__).parent / "static"
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
_MAX_BODY = 64 * 1024


class HttpError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class Dashboard:
    def __init__(self, sim, host, port):
        self.sim = sim
        self.host = host
        self.wanted_port = port
        self.port = None
        self._server = None

    async def start(self):
        self._server = await asyncio.start_server(
            self._serve, self.host, self.wanted_port, reuse_address=True
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
            status, ctype, body = await asyncio.wait_for(self._handle(reader), 10)
        except HttpError as exc:
            status, ctype, body = (
                exc.status,
                "application/json",
                json.dumps({"error": str(exc)}).encode(),
            )
        except Exception as exc:  # a bad request must never take the emulator down
            log.warning("dashboard request failed: %r", exc)
            status, ctype, body = (
                500,
                "application/json",
                json.dumps({"error": repr(exc)}).encode(),
            )
        reason = {
            200: "OK",
            400: "Bad Request",
            404: "Not Found",
            405: "Method Not Allowed",
            415: "Unsupported Media Type",
            500: "Internal Server Error",
        }.get(status, "")
        head = (
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
            "Cache-Control: no-store\r\nConnection: close\r\n\r\n"
            % (status, reason, ctype, len(body))
        )
        try:
            writer.write(head.encode() + body)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _handle(self, reader):
        request = await reader.readline()
        try:
            method, target, _ = request.decode("latin-1").split(" ", 2)
        except ValueError:
            raise HttpError(400, "bad request line")
        headers = {}
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        path = target.split("?", 1)[0]
        if method == "GET":
            return self._get(path)
        if method != "POST":
            raise HttpError(405, "GET or POST only")
        if not headers.get("content-type", "").startswith("application/json"):
            raise HttpError(415, "POST needs Content-Type: application/json")
        length = int(headers.get("content-length", "0"))
        if length > _MAX_BODY:
            raise HttpError(400, "body too large")
        raw = await reader.readexactly(length) if length else b"{}"
        try:
            body = json.loads(raw)
        except ValueError:
            raise HttpError(400, "body is not JSON")
        result = await self._post(path, body)
        return 200, "application/json", json.dumps(result or {"ok": True}).encode()

    def _get(self, path):
        if path == "/api/state":
            state = self.sim.store.snapshot()
            state["knobs"] = self.sim.knobs.as_dict()
            state["ports"] = self.sim.ports
            return 200, "application/json", json.dumps(state).encode()
        name = "index.html" if path == "/" else path.lstrip("/")
        file = (STATIC / name).resolve()
        if file.parent != STATIC.resolve() or not file.is_file():
            raise HttpError(404, "not found")
        return 200, _TYPES.get(file.suffix, "application/octet-stream"), file.read_bytes()

    async def _post(self, path, body):
        sim = self.sim
        if path == "/api/write":
            thing_id, name, value = body.get("thing_id"), body.get("name"), body.get("value")
            if not thing_id or not name or thing_id not in sim.store.things:
                raise HttpError(400, "thing_id and name needed")
            try:
                await sim.cloud.inject_write(thing_id, codec.flatten(name, value))
            except codec.PayloadError as exc:
                raise HttpError(400, str(exc))
            return None
        if path == "/api/knobs":
            try:
                sim.knobs.update(**body)
            except (ValueError, TypeError) as exc:
                raise HttpError(400, str(exc))
            return sim.knobs.as_dict()
        parts = path.strip("/").split("/")
        if len(parts) == 4 and parts[:2] == ["api", "device"]:
            dev = sim.store.devices.get(parts[2])
            if dev is None:
                raise HttpError(404, "no such device")
            action = parts[3]
            if action == "drop":
                return {"dropped": sim._broker.drop(dev.id)}
            if action == "detach":
                await sim.cloud.send_detach(dev)
                return None
            if action == "timezone":
                sim.cloud.send_timezone(dev, int(body.get("offset", 0)), int(body.get("until", 0)))
                return None
        raise HttpError(404, "no such endpoint")
