"""IoT Hub's MQTT side (protocols.md §2.1-2.5, §2.9 "Hub"): who may connect, and what the
hub does with each topic. The plug-in (__init__.py) routes the front's hooks here for
sessions on the "azure-hub" listener.
"""

import asyncio
import itertools
import json
import time
import urllib.parse

from ...core.plugin import Acl, Refuse
from ...core.registry import Device
from . import certs, sas_check
from .twin import Twin

CLOUD = "azure"
C2D_MAX_PENDING = 50  # protocols.md §2.8
C2D_ACK_TIMEOUT_S = 30

_SYSTEM = {"$.mid", "$.cid", "$.ct", "$.ce", "$.uid", "$.ctime", "$.sub", "$.exp", "$.on"}


class AzureDevice(Device):
    """A hub device identity: keys and/or an X.509 mode, its twin, what it sent."""

    def __init__(self, device_id, key=None, secondary_key=None, x509=None):
        super().__init__(device_id, CLOUD)
        self.keys = [key, secondary_key]
        self.x509 = x509  # None, "ca" (CN = device id) or a set of thumbprints
        self.twin = Twin()
        self.telemetry = []  # {"body", "properties", "qos", "retain", "t"}
        self.c2d = []  # {"id", "body", "properties", "topic", "state", "t"}
        self.session = None  # the current hub Session
        self.methods = {}  # $rid -> Future of (status, payload)
        self.flushing = False

    @property
    def key(self):
        return self.keys[0]

    def as_dict(self):
        out = super().as_dict()
        out.update(
            x509=sorted(self.x509) if isinstance(self.x509, set) else self.x509,
            sas=bool(self.key),
            twin=self.twin.document(),
            telemetry=len(self.telemetry),
            last_telemetry=_printable(self.telemetry[-1]) if self.telemetry else None,
            c2d_pending=sum(1 for m in self.c2d if m["state"] == "queued"),
        )
        return out


def _printable(rec):
    body = rec["body"]
    try:
        body = body.decode("utf-8")
    except UnicodeDecodeError:
        body = body.hex()
    return {"body": body[:200], "properties": rec["properties"]}


def parse_bag(bag):
    """A property bag -> {name: value}: "k=v" pairs joined by "&", URL-encoded; "k" alone is
    None, "k=" is "". `%24.mid` and `$.mid` are the same name once decoded."""
    props = {}
    for pair in bag.split("&") if bag else ():
        name, sep, value = pair.partition("=")
        if name:
            props[urllib.parse.unquote(name)] = urllib.parse.unquote(value) if sep else None
    return props


def encode_bag(props, literal_dollar=False):
    """{name: value} -> a bag as the hub writes it (system names as %24.x unless literal)."""
    parts = []
    for name, value in props.items():
        n = urllib.parse.quote(str(name), safe="")
        if literal_dollar and n.startswith("%24."):
            n = "$" + n[3:]
        parts.append(n if value is None else n + "=" + urllib.parse.quote(str(value), safe=""))
    return "&".join(parts)


def _query(level):
    """'?$rid=1&$version=2' -> {'$rid': '1', '$version': '2'}."""
    return parse_bag(level[1:] if level.startswith("?") else "")


class HubSide:
    def __init__(self, plugin):
        self.p = plugin
        self._rids = itertools.count(1)

    @property
    def front(self):
        return self.p.front

    def names(self):
        """Host names the username and `sr` may carry."""
        return {n.lower() for n in (self.p.hub_host, self.p.hub_name, "localhost") if n}

    # -- CONNECT ----------------------------------------------------------------------------

    def authenticate(self, s):
        host, _, rest = (s.username or "").partition("/")
        device_id, sep, query = rest.partition("/?")
        if not sep or "api-version=" not in query:
            raise Refuse("username %r is not {host}/{device}/?api-version=..." % s.username, 4)
        if host.lower() not in self.names():
            raise Refuse("username names hub %r, this is %r" % (host, self.p.hub_name), 4)
        if "/" in device_id:
            raise Refuse("modules are not emulated (%r)" % device_id)
        if device_id != s.client_id:
            raise Refuse("client id %r is not the device id %r" % (s.client_id, device_id), 2)
        dev = self.front.registry.find(device_id, CLOUD)
        if dev is None:
            raise Refuse("unknown device %r" % device_id)
        s.sas_expiry = None
        if s.peer_cert is not None:
            s.auth = _x509_auth(dev.x509, s.peer_cert, device_id)
        elif s.password:
            resources = ["%s/devices/%s" % (h, device_id) for h in self.names()]
            try:
                s.sas_expiry = sas_check.check(s.password, dev.keys, resources)
            except sas_check.SasError as exc:
                raise Refuse("SAS: %s" % exc) from None
            s.auth = "sas"
        else:
            raise Refuse("no SAS token and no client certificate")
        return dev

    def acl(self, s):
        # asked for every message; fixed for the session (its device id): built once
        acl = getattr(s, "hub_acl", None)
        if acl is None:
            acl = s.hub_acl = self._acl(s.device.id)
        return acl

    def _acl(self, d):
        return Acl(
            publish=[
                "devices/%s/messages/events/#" % d,
                "$iothub/twin/GET/#",
                "$iothub/twin/PATCH/properties/reported/#",
                "$iothub/methods/res/#",
            ],
            subscribe=[
                "devices/%s/messages/devicebound/#" % d,
                "$iothub/twin/res/#",
                "$iothub/twin/PATCH/properties/desired/#",
                "$iothub/methods/POST/#",
            ],
        )

    def on_connect(self, s):
        dev = s.device
        old, dev.session = dev.session, s
        if old is not None and old is not s:
            # One connection per device id: the newer one wins (the hub's 400027).
            self.front.event(dev.id, "takeover", "older connection closed", CLOUD)
            old.transport.abort()
        if s.sas_expiry is not None and self.front.knobs.azure_disconnect_at_expiry:
            self.front.spawn(self._expire(s, s.sas_expiry))
        self.front.spawn(self._flush_c2d(dev))

    async def _expire(self, s, se):
        await asyncio.sleep(max(0.0, se - time.time()))
        if s.device.session is s and self.front.knobs.azure_disconnect_at_expiry:
            self.front.event(s.device.id, "expired", "SAS token expired: disconnected", CLOUD)
            s.transport.abort()

    def on_disconnect(self, s):
        if s.device.session is s:
            s.device.session = None

    def on_subscribe(self, s, topic, qos):
        if topic.startswith("devices/"):
            self.front.spawn(self._flush_c2d(s.device))

    # -- device publishes -------------------------------------------------------------------

    def on_publish(self, s, topic, payload, qos, retain):
        dev = s.device
        if qos == 2:
            self.front.event(dev.id, "refused", "QoS 2 publish on %s: disconnected" % topic, CLOUD)
            s.transport.abort()
            return
        events = "devices/%s/messages/events" % dev.id
        if topic == events or topic.startswith(events + "/"):
            return self._telemetry(dev, topic[len(events) + 1 :], payload, qos, retain)
        levels = topic.split("/")
        query = _query(levels[-1])
        rid = query.get("$rid")
        if topic.startswith("$iothub/twin/") and rid is None:
            self.front.event(dev.id, "bad-request", "no $rid on %s" % topic, CLOUD)
        elif topic.startswith("$iothub/twin/GET/"):
            self._twin_reply(s, rid, 200, lambda: dev.twin.document())
        elif topic.startswith("$iothub/twin/PATCH/properties/reported/"):
            self._reported(s, rid, payload)
        elif levels[:3] == ["$iothub", "methods", "res"] and len(levels) == 5:
            self._method_response(dev, levels[3], rid, payload)
        else:
            self.front.event(dev.id, "ignored", topic, CLOUD)

    def _telemetry(self, dev, bag, payload, qos, retain):
        props = parse_bag(bag)
        if retain:
            props["mqtt-retain"] = "true"  # the hub turns RETAIN into a property
        rec = {"body": payload, "properties": props, "qos": qos, "retain": retain}
        rec["t"] = time.time()
        with self.front.registry.lock:
            dev.telemetry.append(rec)
            self.front.registry.notify()
        shown = ", ".join("%s=%s" % kv for kv in sorted(props.items(), key=str))
        self.front.event(dev.id, "telemetry", "%d bytes %s" % (len(payload), shown), CLOUD)

    def _error_knob(self):
        errors = self.front.knobs.azure_twin_errors
        return errors.pop(0) if errors else None

    def _twin_reply(self, s, rid, status, body_fn, version=None):
        forced = self._error_knob()
        if forced is not None:
            status, body = forced, b""
            self.front.event(s.device.id, "twin-error", "%d (knob)" % status, CLOUD)
        else:
            body = b"" if status == 204 else json.dumps(body_fn()).encode()
        topic = "$iothub/twin/res/%d/?$rid=%s" % (status, rid)
        if version is not None and forced is None:
            topic += "&$version=%d" % version
        # The SDK may GET before it subscribes (protocols.md §2.11); the knob delivers anyway.
        lenient = self.front.knobs.azure_twin_reply_unsubscribed
        self.front.reply("twin", s.device.id, topic, body, to=s, unsubscribed=lenient)

    def _reported(self, s, rid, payload):
        dev = s.device
        try:
            patch = json.loads(payload)
            if not isinstance(patch, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            self.front.event(dev.id, "bad-payload", "reported patch: %s" % exc, CLOUD)
            self._twin_reply(s, rid, 400, lambda: {"message": "bad JSON"})
            return
        if self.front.knobs.azure_twin_errors:
            self._twin_reply(s, rid, 204, None)  # the knob's status instead
            return
        with self.front.registry.lock:
            version = dev.twin.patch_reported(patch)
            self.front.registry.notify()
        self.front.event(dev.id, "reported", "$version %d: %s" % (version, sorted(patch)), CLOUD)
        self._twin_reply(s, rid, 204, None, version=version)

    # -- cloud-initiated --------------------------------------------------------------------

    def set_desired(self, dev, patch):
        with self.front.registry.lock:
            version, body = dev.twin.patch_desired(patch)
            self.front.registry.notify()
        s = dev.session
        self.front.event(dev.id, "desired", "$version %d" % version, CLOUD)
        if s is not None:  # only sent while connected (protocols.md §2.5)
            topic = "$iothub/twin/PATCH/properties/desired/?$version=%d" % version
            self.front.reply("desired", dev.id, topic, json.dumps(body).encode(), to=s)
        return version

    async def invoke_method(self, dev, name, payload, timeout_s):
        s = dev.session
        if s is None:
            raise LookupError("device %r is not connected" % dev.id)
        rid = "%x" % next(self._rids)
        fut = dev.methods[rid] = asyncio.get_running_loop().create_future()
        topic = "$iothub/methods/POST/%s/?$rid=%s" % (name, rid)
        body = b"" if payload is None else json.dumps(payload).encode()
        self.front.event(dev.id, "method", "%s $rid=%s" % (name, rid), CLOUD)
        self.front.reply("method", dev.id, topic, body, to=s)
        try:
            return await asyncio.wait_for(fut, timeout_s)
        finally:
            dev.methods.pop(rid, None)

    def _method_response(self, dev, status, rid, payload):
        fut = dev.methods.get(rid)
        if fut is None or fut.done() or not status.isdigit():
            self.front.event(dev.id, "ignored", "method response $rid=%s" % rid, CLOUD)
            return
        try:
            body = json.loads(payload) if payload else None
        except ValueError:
            body = bytes(payload)  # the service would pass it on as it came
        self.front.event(dev.id, "method-response", "%s $rid=%s" % (status, rid), CLOUD)
        fut.set_result((int(status), body))

    def send_c2d(self, dev, body, properties, literal_dollar=False):
        with self.front.registry.lock:
            queued = [m for m in dev.c2d if m["state"] == "queued"]
            if len(queued) >= C2D_MAX_PENDING:
                raise OverflowError(
                    "device %r has %d C2D messages pending" % (dev.id, len(queued))
                )
            props = {"$.mid": "c2d-%d" % (len(dev.c2d) + 1)}
            props["$.to"] = "/devices/%s/messages/deviceBound" % dev.id
            props.update(properties or {})
            props.setdefault("iothub-ack", "none")
            bag = encode_bag(props, literal_dollar)
            msg = {"id": props["$.mid"], "body": bytes(body), "properties": props}
            msg.update(topic="devices/%s/messages/devicebound/%s" % (dev.id, bag), t=time.time())
            msg["state"] = "queued"
            dev.c2d.append(msg)
        self.front.event(dev.id, "c2d", "%s queued" % msg["id"], CLOUD)
        self.front.spawn(self._flush_c2d(dev))
        return msg["id"]

    async def _flush_c2d(self, dev):
        """Deliver queued C2D messages in order, one at a time, each complete at its PUBACK
        (protocols.md §2.5); what cannot be sent yet stays queued for the next connect."""
        if dev.flushing:
            return
        dev.flushing = True
        try:
            while True:
                s = dev.session
                pending = [m for m in dev.c2d if m["state"] == "queued"]
                if s is None or not pending:
                    return
                msg = pending[0]
                if not await self._deliver(dev, s, msg):
                    if dev.session is not None and dev.session is not s:
                        continue  # a new connection came meanwhile: go on with it
                    return
                with self.front.registry.lock:
                    msg["state"] = "completed"
                    self.front.registry.notify()
                self.front.event(dev.id, "c2d", "%s completed (PUBACK)" % msg["id"], CLOUD)
        finally:
            dev.flushing = False

    async def _deliver(self, dev, s, msg):
        """Publish one C2D at QoS 1 and wait for its PUBACK, giving up as soon as the
        connection ends (the message stays queued for the next one) or after a while."""
        task = asyncio.ensure_future(self.front.publish(msg["topic"], msg["body"], 1, to=s))
        deadline = time.monotonic() + C2D_ACK_TIMEOUT_S
        while not task.done():
            await asyncio.wait({task}, timeout=0.2)
            if not task.done() and (dev.session is not s or time.monotonic() > deadline):
                task.cancel()
                return False
        try:
            return task.result()
        except (asyncio.CancelledError, ConnectionError, OSError):
            return False


def _x509_auth(mode, peer_der, device_id):
    if mode is None:
        raise Refuse("device %r has no X.509 authentication" % device_id)
    if isinstance(mode, set):
        if certs.thumbprints(peer_der) & mode:
            return "x509-thumbprint"
        raise Refuse("certificate thumbprint is not the device's")
    if certs.is_self_signed(peer_der):
        raise Refuse("self-signed certificate for a CA-authenticated device")
    cn = certs.common_name(peer_der)
    if cn != device_id:
        raise Refuse("certificate CN %r is not the device id" % cn)
    return "x509-ca"
