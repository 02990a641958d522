"""A second cloud for the emulator, in tests only: "echo" (docs/emulator.md's example, in
full). Password auth (username = device id), JSON up on echo/{id}/up and the same JSON back
on echo/{id}/down, an RPC on a "$" topic (as Azure's $iothub/...), X.509 by thumbprint on a
mutual-TLS listener, an HTTPS route that injects a downlink, and a knob of its own.
"""

import hashlib
import json

from tools.cloudsim import Acl, Listener, Plugin, Refuse, Route
from tools.cloudsim.core.http import HttpError
from tools.cloudsim.core.registry import Device


class EchoDevice(Device):
    def __init__(self, device_id, secret, thumbprint=None):
        super().__init__(device_id, "echo")
        self.secret = secret
        self.thumbprint = thumbprint  # SHA-256 of a (self-signed) client certificate


class EchoCloud(Plugin):
    name = "echo"
    reply_kinds = ("echo",)

    def __init__(self):
        super().__init__()
        self.uplinks = []  # (device id, decoded JSON)

    def attach(self, front):
        super().attach(front)
        front.knobs.declare("echo_wrap", "echo", str)  # a knob of its own

    def add(self, device_id, secret, thumbprint=None):
        return self.front.registry.add(EchoDevice(device_id, secret, thumbprint))

    def listeners(self):
        return [
            Listener("echo", tls="server"),
            Listener("echo-x509", tls="mutual-required"),
            Listener("echo-api", kind="https", tls="server"),
        ]

    def authenticate(self, session):
        if session.listener.name == "echo-x509":  # X.509 by thumbprint, as Azure's
            print_ = hashlib.sha256(session.peer_cert).hexdigest()
            dev = self.front.registry.find(session.client_id, "echo")
            if dev is None or dev.thumbprint != print_:
                raise Refuse("certificate %s... is not %s's" % (print_[:12], session.client_id))
            session.auth = "x509"
            return dev
        dev = self.front.registry.find(session.username or "", "echo")
        if dev is None:
            raise Refuse("unknown device %r" % session.username)
        if session.password != dev.secret.encode():
            raise Refuse("wrong password for %s" % dev.id)
        return dev

    def acl(self, session):
        d = session.device.id
        return Acl(
            publish=["echo/%s/up" % d, "$echo/%s/rpc" % d],
            subscribe=["echo/%s/down" % d, "echo/%s/down/+" % d],
        )

    def on_publish(self, session, topic, payload, qos, retain):
        d = session.device.id
        body = json.loads(payload)
        if topic.startswith("$"):
            down = "echo/%s/down/rpc" % d
            self.front.reply("echo", d, down, json.dumps({"result": body}).encode())
            return
        self.uplinks.append((d, body))
        wrapped = json.dumps({self.front.knobs.echo_wrap: body}).encode()
        self.front.reply("echo", d, "echo/%s/down" % d, wrapped)

    def routes(self):
        return [Route("POST", "/v1/devices/{id}/down", self._http_down, listener="echo-api")]

    async def _http_down(self, req):
        dev = self.front.registry.find(req.params["id"], "echo")
        if dev is None or req.bearer() != dev.secret:
            raise HttpError(401, "bad token")
        await self.front.publish("echo/%s/down" % dev.id, req.body)
        return {"sent": True}

    def inject(self, device_id, obj):
        """For tests: a downlink from the cloud, from the test's thread."""
        payload = json.dumps(obj).encode()
        self.front.call(self.front.publish, "echo/%s/down" % device_id, payload)

    def state(self):
        return {"echo_uplinks": len(self.uplinks)}
