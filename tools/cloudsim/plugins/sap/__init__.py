"""SAP IoT (the Cloud Foundry "Internet of Things" MQTT gateway) as an emulator plug-in
(protocols.md §4).

Listener "sap" (mutual TLS against the test CA, as {tenant}.cp.iot.sap:8883). The client
certificate is the only credential: it must be one the emulator issued (or was given) for a
device, and the client id must be that device's alternate id (else CONNACK 2). No
certificate, or one registered to no device: CONNACK 5. A certificate from another CA, or
an expired one, fails the TLS handshake itself (the client sees the alert: "unknown ca",
"certificate expired"), as at SAP.

ACL: publish measures/{alternateId}; subscribe ack/{alternateId} and commands/{alternateId}.
Each measure message is checked against the model (model.py) and acked on ack/{altId} with
{"capabilityAlternateId", "sensorAlternateId", "code": 202} or an error code (400) plus a
"message". Test methods (sim.clouds["sap"], from the test's thread):

    sap.add_capability("env", [("temperature", "float"), ("unit", "string")])
    sap.add_capability("switch", [("LED", "boolean")])
    sap.add_device("dev-1", sensors={"s1": {"measures": ["env"], "commands": ["switch"]}})
    bundle = sap.issue_certificate("dev-1")       # {"secret", "pem"}, as SAP's API returns
    sap.wait_measure("dev-1")                     # {"t", "capability", "sensor", "samples", ...}
    sap.send_command("dev-1", "switch", "s1", {"LED": True})

Own knobs: sap_ack_delay_s (acks this late), sap_drop_acks (the next N acks are never sent;
-1 all), sap_ack_code (0: by the model; else every measure gets this code). The front's
mute/malformed knobs know the reply kinds "ack" and "command".
"""

import asyncio
import datetime
import json
import time

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ... import pki
from ...core.http import HttpError
from ...core.plugin import Acl, Listener, Plugin, Refuse, Route
from ...core.registry import Device
from . import bundle as bundles
from . import model

CLOUD = "sap"
ACCEPTED = 202
_KEEP = 1000  # measures kept per device


def plugin():
    return SAPPlugin()


class SAPDevice(Device):
    def __init__(self, alternate_id, sensors):
        super().__init__(alternate_id, CLOUD)
        self.sensors = sensors  # {sensor alt id: {"measure": set, "command": set}}
        self.fingerprints = set()  # SHA-256 of the device's certificates (DER)
        self.measures = []  # {"t", "capability", "sensor", "samples", "timestamp", "code"}
        self.acks = []  # every ack decided: {"code", "capabilityAlternateId", ..., "sent"}
        self.commands = []

    def as_dict(self):
        out = super().as_dict()
        out.update(
            {
                "sensors": {k: {n: sorted(v[n]) for n in v} for k, v in self.sensors.items()},
                "measures": len(self.measures),
                "last_measure": self.measures[-1] if self.measures else None,
            }
        )
        return out


def _sensors(spec):
    out = {}
    for sensor_id, caps in (spec or {}).items():
        if isinstance(caps, dict):
            out[sensor_id] = {
                "measure": set(caps.get("measures", ())),
                "command": set(caps.get("commands", ())),
            }
        else:
            out[sensor_id] = {"measure": set(caps), "command": set()}
    return out


class SAPPlugin(Plugin):
    name = CLOUD
    reply_kinds = ("ack", "command")

    def __init__(self):
        super().__init__()
        self.capabilities = {}  # alternate id -> model.Capability
        self._by_fingerprint = {}  # certificate SHA-256 -> device alternate id

    def attach(self, front):
        super().attach(front)
        front.knobs.declare("sap_ack_delay_s", 0.0, float)
        front.knobs.declare("sap_drop_acks", 0, int)
        front.knobs.declare("sap_ack_code", 0, int)

    def listeners(self):
        return [Listener("sap", tls="mutual")]

    # -- the model and the devices (test methods; any thread) --------------------------------

    def add_capability(self, alternate_id, properties):
        """properties: [(name, type)] or [{"name", "dataType"}], in the capability's order."""
        cap = model.Capability(alternate_id, properties)
        with self.front.registry.lock:
            self.capabilities[alternate_id] = cap
        return cap

    def add_device(self, alternate_id, sensors=None):
        """sensors: {sensor alternate id: [measure capability ids]} or {sensor id:
        {"measures": [...], "commands": [...]}}."""
        sensors = _sensors(sensors)
        for s in sensors.values():
            for cap in s["measure"] | s["command"]:
                if cap not in self.capabilities:
                    raise ValueError("capability %r is not defined" % cap)
        with self.front.registry.lock:
            dev = self.front.registry.find(alternate_id, CLOUD)
            if dev is None:
                return self.front.registry.add(SAPDevice(alternate_id, sensors))
            dev.sensors.update(sensors)
            return dev

    def device(self, alternate_id):
        dev = self.front.registry.find(alternate_id, CLOUD)
        if dev is None:
            raise KeyError(alternate_id)
        return dev

    def register_certificate(self, alternate_id, cert):
        """Let a certificate (PEM or DER; it must chain to the test CA) stand for a device."""
        if isinstance(cert, str):
            cert = cert.encode()
        if cert.lstrip()[:1] == b"-":
            cert = x509.load_pem_x509_certificate(cert).public_bytes(serialization.Encoding.DER)
        dev = self.device(alternate_id)
        fp = pki.fingerprint(cert)
        with self.front.registry.lock:
            dev.fingerprints.add(fp)
            self._by_fingerprint[fp] = alternate_id
        return fp

    def issue_certificate(self, alternate_id, secret=None, days=365, not_after=None):
        """A device certificate as SAP's API hands it out: -> {"secret", "pem"}, the PEM an
        encrypted PKCS#8 RSA key then the certificate (CN = alternate id, from the test CA).
        not_after (a datetime) in the past makes an expired one."""
        now = datetime.datetime.now(datetime.timezone.utc)
        if not_after is None:
            not_after = now + datetime.timedelta(days=days)
        not_before = min(now, not_after) - datetime.timedelta(days=1)
        key, cert = bundles.issue_certificate(
            self.front.ca.key, self.front.ca.cert, alternate_id, not_before, not_after
        )
        self.register_certificate(alternate_id, cert.public_bytes(serialization.Encoding.DER))
        secret = secret or bundles.new_secret()
        return {"secret": secret, "pem": bundles.make_bundle(key, cert, secret)}

    # -- who may connect ---------------------------------------------------------------------

    def authenticate(self, session):
        if not session.peer_cert:
            raise Refuse("no client certificate: SAP IoT devices authenticate by certificate")
        cert = x509.load_der_x509_certificate(session.peer_cert)
        subject = cert.subject.rfc4514_string()
        alt = self._by_fingerprint.get(pki.fingerprint(session.peer_cert))
        dev = self.front.registry.find(alt, CLOUD) if alt else None
        if dev is None:
            raise Refuse("certificate %s is not registered to any device" % subject)
        if session.client_id != dev.id:
            raise Refuse(
                "client id %r is not the alternate id %r of the certificate's device (%s)"
                % (session.client_id, dev.id, subject),
                code=2,
            )
        session.auth = "certificate"
        return dev

    def acl(self, session):
        alt = session.device.id
        return Acl(
            publish=["measures/%s" % alt],
            subscribe=["ack/%s" % alt, "commands/%s" % alt],
        )

    # -- measures and acks -------------------------------------------------------------------

    def on_publish(self, session, topic, payload, qos, retain):
        dev = session.device
        body, cap_id, sensor_id = None, None, None
        try:
            body = json.loads(bytes(payload))
            if isinstance(body, dict):
                cap_id = body.get("capabilityAlternateId")
                sensor_id = body.get("sensorAlternateId")
            cap_id, sensor_id, samples, timestamp = model.validate(
                self.capabilities, dev.sensors, body
            )
            code, message = ACCEPTED, None
        except (UnicodeDecodeError, ValueError) as exc:  # MeasureError is a ValueError
            samples, timestamp = None, None
            code = getattr(exc, "code", model.INVALID)
            message = getattr(exc, "message", "not JSON: %s" % exc)
        forced = self.front.knobs.sap_ack_code
        if forced and code == ACCEPTED:
            code, message = forced, "sap_ack_code knob"
        entry = {
            "t": time.time(),
            "capability": cap_id,
            "sensor": sensor_id,
            "samples": samples,
            "timestamp": timestamp,
            "code": code,
        }
        with self.front.registry.lock:
            dev.measures.append(entry)
            del dev.measures[:-_KEEP]
            self.front.registry.notify()
        if code == ACCEPTED:
            self.front.event(dev.id, "measure", "%s/%s %s" % (cap_id, sensor_id, samples), CLOUD)
        else:
            self.front.event(dev.id, "measure-refused", "%d %s" % (code, message), CLOUD)
        self._ack(dev, cap_id, sensor_id, code, message)

    def _ack(self, dev, cap_id, sensor_id, code, message):
        ack = {"capabilityAlternateId": cap_id, "sensorAlternateId": sensor_id, "code": code}
        if message:
            ack["message"] = message
        knobs = self.front.knobs
        dropped = knobs.sap_drop_acks != 0
        if knobs.sap_drop_acks > 0:
            knobs.sap_drop_acks -= 1
        with self.front.registry.lock:
            dev.acks.append(dict(ack, sent=not dropped))
        if dropped:
            self.front.event(dev.id, "ack-dropped", "%d (sap_drop_acks knob)" % code, CLOUD)
            return
        payload = json.dumps(ack).encode()
        topic = "ack/%s" % dev.id
        delay = knobs.sap_ack_delay_s
        if delay:

            async def later():
                await asyncio.sleep(delay)
                self.front.reply("ack", dev.id, topic, payload)

            self.front.spawn(later())
        else:
            self.front.reply("ack", dev.id, topic, payload)

    def measures(self, alternate_id):
        with self.front.registry.lock:
            return list(self.device(alternate_id).measures)

    def acks(self, alternate_id):
        with self.front.registry.lock:
            return list(self.device(alternate_id).acks)

    def wait_measure(self, alternate_id, pred=None, timeout=10, count=1):
        """The `count`-th measure message (accepted or not) matching pred; TimeoutError."""
        dev = self.device(alternate_id)

        def check():
            hits = [m for m in dev.measures if pred is None or pred(m)]
            return hits[count - 1] if len(hits) >= count else None

        return self.front.registry.wait(check, timeout)

    # -- commands ----------------------------------------------------------------------------

    async def _command(self, alternate_id, capability, sensor, command, validate):
        dev = self.device(alternate_id)
        if validate:
            model.check_command(self.capabilities, dev.sensors, capability, sensor, command)
        body = {"sensorAlternateId": sensor, "capabilityAlternateId": capability}
        body["command"] = command
        with self.front.registry.lock:
            dev.commands.append(body)
        self.front.reply("command", dev.id, "commands/%s" % dev.id, json.dumps(body).encode())

    def send_command(self, alternate_id, capability, sensor, command, validate=True):
        """A command on commands/{alternateId}, as the cloud sends it. validate=False sends
        one the model would refuse. From the test's thread; ValueError if it does not fit."""
        self.front.call(self._command, alternate_id, capability, sensor, command, validate)

    # -- dashboard ---------------------------------------------------------------------------

    def state(self):
        with self.front.registry.lock:
            devs = self.front.registry.devices(CLOUD).values()
            return {
                "sap": {
                    "capabilities": [c.as_dict() for c in self.capabilities.values()],
                    "devices": {d.id: {"measures": d.measures[-20:]} for d in devs},
                }
            }

    def routes(self):
        return [Route("POST", "/api/sap/device/{id}/command", self._http_command)]

    async def _http_command(self, req):
        body = req.json() or {}
        try:
            await self._command(
                req.params["id"],
                body.get("capability"),
                body.get("sensor"),
                body.get("command"),
                True,
            )
        except KeyError:
            raise HttpError(404, "no such SAP device") from None
        except ValueError as exc:
            raise HttpError(400, str(exc)) from None
