"""akenza (MQTT with JWT device credentials) as an emulator plug-in (protocols.md §3).

Listeners: "akenza" (TLS, server certificate only, as mqtt.akenza.io:8883) and, with
plugin(plain=True), "akenza-plain" (no TLS; debugging only). Two ways in:

* JWT: client id = a registered device id, a username present (its value is ignored), the
  password a JWT checked by token.verify (alg, kid, R||S signature, aud, exp, iat with a
  skew). A bad token gets CONNACK 5 and a "refused" event naming the claim.
* uplink secret: username = a registered connector id, password = its secret; the device
  id is in the topic /up/{secret}/id/{deviceId}.

ACL: a JWT device publishes on /up/device/id/{id}[/...] and subscribes under
/down/device/id/{id}/#; a connector publishes on /up/{secret}/id/+[/...] and subscribes to
nothing (the downlink topic of that mode is UNCONFIRMED). Test methods, from the test's
thread (sim.clouds["akenza"]):

    akenza.add_device("dev-1", open("ec_public.pem").read())   # or a self-signed cert PEM
    akenza.add_connector("conn-1", "s3cret")
    akenza.wait_uplink("dev-1")                # {"t", "topic", "data", "via"}
    akenza.send_downlink("dev-1", "commands", {"led": True})
    akenza.uplinks("dev-1"), akenza.last_claims("dev-1")

Own knobs: akenza_disconnect_at_exp (drop a JWT session when its token expires),
akenza_iat_skew_s (default 60), akenza_max_lifetime_s (0: no limit).
"""

import asyncio
import hmac
import json
import time

from ...core.http import HttpError
from ...core.plugin import Acl, Listener, Plugin, Refuse, Route
from ...core.registry import Device
from . import token as jwtcheck
from .token import DEFAULT_AUDIENCE, PublicKey, TokenError

CLOUD = "akenza"
_KEEP_UPLINKS = 1000  # per device, oldest dropped first


def plugin(audience=DEFAULT_AUDIENCE, plain=False):
    return AkenzaPlugin(audience, plain)


class AkenzaDevice(Device):
    def __init__(self, device_id):
        super().__init__(device_id, CLOUD)
        self.keys = []  # PublicKey
        self.uplinks = []  # {"t", "topic", "data", "via"}
        self.rejected = []  # (topic, reason): uplinks that were not JSON objects
        self.downlinks = []  # (sub topic, payload bytes)
        self.claims = None  # of the token the current/last session connected with

    def as_dict(self):
        out = super().as_dict()
        out.update(
            {
                "kids": [k.kid for k in self.keys],
                "uplinks": len(self.uplinks),
                "last_uplink": self.uplinks[-1] if self.uplinks else None,
                "token_exp": (self.claims or {}).get("exp"),
            }
        )
        return out


class AkenzaConnector(Device):
    """A device connector in uplink-secret mode: one login for many devices."""

    def __init__(self, connector_id, secret):
        super().__init__(connector_id, CLOUD)
        self.secret = secret

    def as_dict(self):
        out = super().as_dict()
        out["connector"] = True
        return out


class AkenzaPlugin(Plugin):
    name = CLOUD
    reply_kinds = ()  # akenza never answers a device; downlinks are injected

    def __init__(self, audience=DEFAULT_AUDIENCE, plain=False):
        super().__init__()
        self.audience = audience
        self.plain = plain
        self._expiry = {}  # session -> task dropping it at its token's exp

    def attach(self, front):
        super().attach(front)
        front.knobs.declare("akenza_disconnect_at_exp", False, bool)
        front.knobs.declare("akenza_iat_skew_s", 60, int)
        front.knobs.declare("akenza_max_lifetime_s", 0, int)

    def listeners(self):
        out = [Listener("akenza", tls="server")]
        if self.plain:
            out.append(Listener("akenza-plain", tls=None))
        return out

    # -- registry (test methods; any thread) -------------------------------------------------

    def add_device(self, device_id, *keys):
        """Register a device with public key PEMs or (self-signed) certificate PEMs (str,
        bytes, or a path). Returns the AkenzaDevice; adding keys to a known id adds keys."""
        with self.front.registry.lock:
            dev = self.front.registry.find(device_id, CLOUD)
            if dev is None:
                dev = self.front.registry.add(AkenzaDevice(device_id))
            elif not isinstance(dev, AkenzaDevice):
                raise ValueError("%r is a connector" % device_id)
            for key in keys:
                if hasattr(key, "read_bytes"):
                    key = key.read_bytes()
                dev.keys.append(key if isinstance(key, PublicKey) else PublicKey(key))
            self.front.registry.notify()
        return dev

    def add_connector(self, connector_id, secret):
        """Uplink-secret mode: username = connector_id, password = secret."""
        return self.front.registry.add(AkenzaConnector(connector_id, secret))

    def device(self, device_id):
        dev = self.front.registry.find(device_id, CLOUD)
        if not isinstance(dev, AkenzaDevice):
            raise KeyError(device_id)
        return dev

    # -- who may connect ---------------------------------------------------------------------

    def authenticate(self, session):
        if session.password is None:
            raise Refuse("no password (the JWT or the connector secret)", code=4)
        if session.username is None:
            raise Refuse("no username: it must be present (any value) with the JWT", code=4)
        conn = self.front.registry.find(session.username, CLOUD)
        if isinstance(conn, AkenzaConnector):
            if not hmac.compare_digest(bytes(session.password), conn.secret.encode()):
                raise Refuse("wrong secret for connector %s" % conn.id)
            session.auth = "uplink-secret"
            session.key = "%s|connector|%s" % (CLOUD, conn.id)
            return conn
        dev = self.front.registry.find(session.client_id or "", CLOUD)
        if not isinstance(dev, AkenzaDevice):
            raise Refuse("client id %r is not a registered device id" % session.client_id)
        knobs = self.front.knobs
        try:
            claims, key = jwtcheck.verify(
                bytes(session.password),
                list(dev.keys),
                dev.id,
                time.time(),
                self.audience,
                knobs.akenza_iat_skew_s,
                knobs.akenza_max_lifetime_s,
            )
        except TokenError as exc:
            raise Refuse("JWT refused: %s" % exc) from None  # the token itself is never logged
        session.auth = "jwt %s" % key.algorithm
        session.akenza_claims = claims
        return dev

    def acl(self, session):
        dev = session.device
        if isinstance(dev, AkenzaConnector):
            up = "/up/%s/id/+" % dev.secret
            return Acl(publish=[up, up + "/#"])
        up = "/up/device/id/%s" % dev.id
        return Acl(publish=[up, up + "/#"], subscribe=["/down/device/id/%s/#" % dev.id])

    def on_connect(self, session):
        claims = getattr(session, "akenza_claims", None)
        if claims is None:
            return
        with self.front.registry.lock:
            session.device.claims = claims
        self.front.event(
            session.device.id,
            "token",
            "%s, exp in %d s" % (session.auth, int(claims["exp"] - time.time())),
            CLOUD,
        )
        if self.front.knobs.akenza_disconnect_at_exp:
            self._expiry[session] = self.front.spawn(self._expire(session, claims["exp"]))

    async def _expire(self, session, exp):
        await asyncio.sleep(max(0.0, exp - time.time()))
        self._expiry.pop(session, None)
        self.front.event(session.device.id, "expired", "token expired: dropped", CLOUD)
        session.transport.abort()

    def on_disconnect(self, session):
        task = self._expiry.pop(session, None)
        if task is not None:
            task.cancel()

    # -- uplinks -----------------------------------------------------------------------------

    def on_publish(self, session, topic, payload, qos, retain):
        dev = session.device
        levels = topic.split("/")  # "", "up", secret|"device", "id", device id, sub...
        if isinstance(dev, AkenzaConnector):
            dev = self.front.registry.find(levels[4], CLOUD)
            if not isinstance(dev, AkenzaDevice):
                self.front.event(levels[4], "unknown-device", "uplink via connector", CLOUD)
                return
            via = "uplink-secret"
        else:
            via = "jwt"
        sub = "/".join(levels[5:])  # how akenza joins levels is UNCONFIRMED
        try:
            data = json.loads(bytes(payload))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except (UnicodeDecodeError, ValueError) as exc:
            with self.front.registry.lock:
                dev.rejected.append((topic, str(exc)))
            self.front.event(dev.id, "bad-payload", "%s: %s" % (topic, exc), CLOUD)
            return
        with self.front.registry.lock:
            dev.uplinks.append({"t": time.time(), "topic": sub, "data": data, "via": via})
            del dev.uplinks[:-_KEEP_UPLINKS]
            self.front.registry.notify()
        self.front.event(dev.id, "uplink", "%s%s" % (sub + " " if sub else "", data), CLOUD)

    def uplinks(self, device_id):
        with self.front.registry.lock:
            return list(self.device(device_id).uplinks)

    def wait_uplink(self, device_id, pred=None, timeout=10, count=1):
        """The `count`-th uplink (from the start) matching pred(uplink); TimeoutError."""
        dev = self.device(device_id)

        def check():
            hits = [u for u in dev.uplinks if pred is None or pred(u)]
            return hits[count - 1] if len(hits) >= count else None

        return self.front.registry.wait(check, timeout)

    def last_claims(self, device_id):
        return self.device(device_id).claims

    # -- downlinks ---------------------------------------------------------------------------

    async def _downlink(self, device_id, sub_topic, payload):
        topic = "/down/device/id/%s" % device_id
        if sub_topic:
            topic += "/" + sub_topic.strip("/")
        if isinstance(payload, str):
            payload = payload.encode()
        elif not isinstance(payload, (bytes, bytearray)):
            payload = json.dumps(payload).encode()
        dev = self.device(device_id)
        with self.front.registry.lock:
            dev.downlinks.append((sub_topic or "", bytes(payload)))
        await self.front.publish(topic, payload, 1)
        self.front.event(device_id, "downlink", "%s %s" % (topic, payload[:80]), CLOUD)
        return topic

    def send_downlink(self, device_id, sub_topic, payload):
        """A downlink on /down/device/id/{id}[/{sub_topic}], QoS 1: payload a dict/list
        (sent as JSON), str or bytes (as is). From the test's thread; returns the topic."""
        return self.front.call(self._downlink, device_id, sub_topic, payload)

    # -- dashboard ---------------------------------------------------------------------------

    def state(self):
        with self.front.registry.lock:
            devs = self.front.registry.devices(CLOUD).values()
            return {
                "akenza": {
                    d.id: {"uplinks": d.uplinks[-20:], "kids": [k.kid for k in d.keys]}
                    for d in devs
                    if isinstance(d, AkenzaDevice)
                }
            }

    def routes(self):
        return [Route("POST", "/api/akenza/device/{id}/downlink", self._http_downlink)]

    async def _http_downlink(self, req):
        body = req.json() or {}
        try:
            self.device(req.params["id"])
        except KeyError:
            raise HttpError(404, "no such akenza device") from None
        topic = await self._downlink(req.params["id"], body.get("topic", ""), body.get("data"))
        return {"topic": topic}
