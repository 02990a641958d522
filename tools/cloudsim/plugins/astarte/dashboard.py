"""The Astarte plug-in's part of the dashboard: its /api/state entry (generic: per device
its introspection, properties both ways, the last datastreams and rejections) and two
injection routes on the dashboard's port:

    POST /api/astarte/device/{id}/server-property     {"interface", "path", "value"}
    POST /api/astarte/device/{id}/server-datastream   (value null unsets a property)

JSON values are converted by the mapping's type (interfaces.from_json).
"""

import datetime

from ...core.http import HttpError
from ...core.plugin import Route
from . import interfaces as ifc

CLOUD = "astarte"


def routes(plugin):
    async def prop(req):
        return await _property(plugin, req)

    async def stream(req):
        return await _datastream(plugin, req)

    return [
        Route("POST", "/api/astarte/device/{id}/server-property", prop),
        Route("POST", "/api/astarte/device/{id}/server-datastream", stream),
    ]


def state(plugin):
    with plugin.front.registry.lock:
        devices = {}
        for dev in plugin.front.registry.devices(CLOUD).values():
            devices[dev.id] = {
                "realm": dev.realm,
                "introspection": {k: list(v) for k, v in (dev.introspection or {}).items()},
                "properties": {n + p: ifc.to_json(v) for (n, p), v in dev.props.items()},
                "server_properties": {
                    n + p: ifc.to_json(v) for (n, p), v in dev.server_props.items()
                },
                "datastreams": [
                    {
                        "interface": r["interface"],
                        "path": r["path"],
                        "value": ifc.to_json(r["value"]),
                        "timestamp": ifc.to_json(r["timestamp"]),
                        "received": r["received"],
                    }
                    for r in dev.datastreams[-20:]
                ],
                "rejected": [list(r) for r in dev.rejected[-20:]],
            }
    return {
        "astarte": {
            "realms": sorted(plugin.realms),
            "interfaces": sorted(
                "%s:%d.%d" % (i.name, i.major, i.minor) for i in plugin.interfaces.values()
            ),
            "devices": devices,
        }
    }


def _body(plugin, req):
    dev = plugin.find(req.params["id"])
    body = req.json() or {}
    if dev is None or not isinstance(body, dict) or "interface" not in body:
        raise HttpError(400, "a known device and {interface, path, value} needed")
    return dev, body


async def _property(plugin, req):
    dev, body = _body(plugin, req)
    try:
        iface = plugin.server_interface(dev, body["interface"], "properties")
        path = body.get("path", "")
        if body.get("value") is None:
            ifc.check_message(iface, path, None)
            with plugin.front.registry.lock:
                dev.server_props.pop((iface.name, path), None)
            value = None
        else:
            m = iface.mapping(path)
            raw = ifc.from_json(m, body["value"]) if m else body["value"]
            value, _ = ifc.check_message(iface, path, {"v": raw})
            with plugin.front.registry.lock:
                dev.server_props[(iface.name, path)] = value
    except (KeyError, ValueError) as exc:
        raise HttpError(400, str(exc))
    return {"sent": await plugin.mqtt.server_message(dev, iface, path, value)}


async def _datastream(plugin, req):
    dev, body = _body(plugin, req)
    try:
        iface = plugin.server_interface(dev, body["interface"], "datastream")
        path = body.get("path", "")
        if iface.object:
            fields = iface.object_fields(path)
            raw = {
                k: ifc.from_json(fields[k], v) if k in fields else v
                for k, v in (body.get("value") or {}).items()
            }
            m = iface.mappings[0]
        else:
            m = iface.mapping(path)
            raw = ifc.from_json(m, body.get("value")) if m else body.get("value")
        doc = {"v": raw}
        if m is not None and m.explicit_timestamp:
            doc["t"] = datetime.datetime.now(datetime.timezone.utc)
        value, t = ifc.check_message(iface, path, doc)
    except (KeyError, ValueError) as exc:
        raise HttpError(400, str(exc))
    return {"sent": await plugin.mqtt.server_message(dev, iface, path, value, t)}
