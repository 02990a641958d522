"""The dashboard shell: the page, the state of every cloud, the common knobs and actions.

    GET  /                               the page (static/index.html, app.js, style.css)
    GET  /api/state                      devices of every cloud, events, knobs, ports, and
                                         what each plug-in's state() adds (Arduino: things)
    POST /api/knobs                      any knob (common or a plug-in's)
    POST /api/device/{id}/drop           cut a device's connection (any cloud)
    POST /api/cloud/{cloud}/device/{id}/drop

Plug-ins add their own routes on this port (Arduino: /api/write, detach, timezone).
POST bodies must be JSON with Content-Type application/json: a browser cannot send that
cross-origin without a CORS preflight, which this server never grants.
"""

import json
from pathlib import Path

from .http import HttpError, Response
from .plugin import Route

STATIC = Path(__file__).resolve().parent.parent / "static"
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


def routes(front):
    async def page(req):
        name = req.params.get("file", "index.html")
        file = (STATIC / name).resolve()
        if file.parent != STATIC or not file.is_file():
            raise HttpError(404, "not found")
        return Response(200, body=file.read_bytes(), content_type=_TYPES.get(file.suffix))

    async def state(req):
        out = front.registry.snapshot()
        out["knobs"] = front.knobs.as_dict()
        out["reply_kinds"] = sorted(front.knobs.reply_kinds)
        out["ports"] = front.ports
        out["clouds"] = [p.name for p in front.plugins]
        for plugin in front.plugins:
            out.update(plugin.state())
        return Response(200, body=json.dumps(out).encode(), content_type="application/json")

    async def knobs(req):
        try:
            front.knobs.update(**(req.json() or {}))
        except (ValueError, TypeError) as exc:
            raise HttpError(400, str(exc))
        return front.knobs.as_dict()

    async def drop(req):
        cloud = req.params.get("cloud")
        dev = front.registry.find(req.params["id"], cloud)
        if dev is None:
            raise HttpError(404, "no such device")
        return {"dropped": front.mqtt.drop(dev.id, dev.cloud)}

    return [
        Route("GET", "/", page),
        Route("GET", "/{file}", page),
        Route("GET", "/api/state", state),
        Route("POST", "/api/knobs", knobs),
        Route("POST", "/api/device/{id}/drop", drop),
        Route("POST", "/api/cloud/{cloud}/device/{id}/drop", drop),
    ]
