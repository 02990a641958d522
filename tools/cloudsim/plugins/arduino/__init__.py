"""The Arduino IoT Cloud as an emulator plug-in (protocols.md §1).

Listeners: "password" (TLS, server auth only; username = client id = device id, password
= the device's secret), "certificate" (mutual TLS against the test CA; the client
certificate must be the one registered for the device the client id names) and, when
asked for, "plain" (no TLS, password auth: debugging only). ACL: a device may use its own
/a/d/{id}/... topics and its thing's /a/t/{thing}/... topics, exact topics only.
"""

import hmac

from ... import pki
from ...core.http import HttpError
from ...core.plugin import Acl, Listener, Plugin, Refuse, Route
from . import codec
from .cloud import Cloud
from .store import Store

REPLY_KINDS = ("thing_id", "thing_update", "last_values", "timezone")
_DEVICE_TOPICS = ("e/i", "e/o", "c/up", "c/dw")
_THING_TOPICS = ("e/i", "e/o", "shadow/i", "shadow/o")


def plugin(store=None, plain=False):
    return ArduinoPlugin(store, plain)


class ArduinoPlugin(Plugin):
    name = "arduino"
    reply_kinds = REPLY_KINDS

    def __init__(self, store=None, plain=False):
        super().__init__()
        self.store = store or Store()
        self.plain = plain
        self.cloud = None

    def attach(self, front):
        super().attach(front)
        if self.store.registry is not front.registry:
            raise ValueError("the Arduino store must share the front's registry")
        self.cloud = Cloud(self.store, front)

    def listeners(self):
        out = [Listener("password", tls="server"), Listener("certificate", tls="mutual")]
        if self.plain:
            out.append(Listener("plain", tls=None))
        return out

    # -- who may connect, and which topics it may use ------------------------------------------

    def authenticate(self, session):
        if session.listener.name == "certificate":
            dev, how = self._check_certificate(session.client_id, session.peer_cert), "certificate"
        else:
            dev = self._check_password(session.client_id, session.username, session.password)
            how = "password"
        if dev is None:
            raise Refuse("bad %s credentials on the %s port" % (how, session.listener.name))
        session.auth = how
        return dev

    def _check_password(self, client_id, username, password):
        """username == client id == a registered device id, password == its secret."""
        if not client_id or username != client_id or password is None:
            return None
        dev = self.store.devices.get(client_id)
        if dev is None or dev.secret is None:
            return None
        if not hmac.compare_digest(bytes(password), dev.secret.encode()):
            return None
        return dev

    def _check_certificate(self, client_id, cert_der):
        """The verified client certificate must be the one registered for the device the
        client id names. (The TLS layer already checked it chains to the test CA.)"""
        if not client_id or not cert_der:
            return None
        dev = self.store.devices.get(client_id)
        if dev is None or dev.cert_fingerprint is None:
            return None
        if not hmac.compare_digest(pki.fingerprint(cert_der), dev.cert_fingerprint):
            return None
        return dev

    def acl(self, session):
        dev = session.device
        topics = ["/a/d/%s/%s" % (dev.id, t) for t in _DEVICE_TOPICS]
        if dev.thing_id:
            topics += ["/a/t/%s/%s" % (dev.thing_id, t) for t in _THING_TOPICS]
        return Acl(publish=topics, subscribe=topics)

    # -- what devices do ------------------------------------------------------------------------

    def on_subscribe(self, session, topic, qos):
        self.cloud.on_subscribed(session.device, topic)

    def on_publish(self, session, topic, payload, qos, retain):
        self.cloud.on_message(session.device, topic, payload)

    # -- dashboard ------------------------------------------------------------------------------

    def state(self):
        return {"things": self.store.things_snapshot()}

    def routes(self):
        return [
            Route("POST", "/api/write", self._http_write),
            Route("POST", "/api/device/{id}/detach", self._http_detach),
            Route("POST", "/api/device/{id}/timezone", self._http_timezone),
        ]

    def _device(self, req):
        dev = self.store.devices.get(req.params["id"])
        if dev is None:
            raise HttpError(404, "no such device")
        return dev

    async def _http_write(self, req):
        body = req.json() or {}
        thing_id, name, value = body.get("thing_id"), body.get("name"), body.get("value")
        if not thing_id or not name or thing_id not in self.store.things:
            raise HttpError(400, "thing_id and name needed")
        try:
            await self.cloud.inject_write(thing_id, codec.flatten(name, value))
        except codec.PayloadError as exc:
            raise HttpError(400, str(exc))

    async def _http_detach(self, req):
        await self.cloud.send_detach(self._device(req))

    async def _http_timezone(self, req):
        body = req.json() or {}
        self.cloud.send_timezone(
            self._device(req), int(body.get("offset", 0)), int(body.get("until", 0))
        )
