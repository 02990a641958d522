"""Azure IoT Hub + the Device Provisioning Service as an emulator plug-in (protocols.md §2).

Two MQTT listeners on TLS, both on port 8883 because the official SDK hard-codes it, each
on a loopback address of its own: "azure-hub" (default 127.0.0.2) and "azure-dps"
(127.0.0.3). Both ask for a client certificate (X.509 devices) and accept SAS tokens.
hub.py is the hub, dps.py the DPS, twin.py the twin store, sas_check.py the SAS check,
certs.py the X.509 rules. Test methods, from the test's thread (docs/emulator.md, "Azure"):

    azure = sim.clouds["azure"]
    dev = azure.add_device("dev1")                       # a random key: dev.key
    azure.add_enrollment("reg1", key=KEY)                # DPS, individual symmetric key
    azure.add_group_enrollment("g1", key=GROUP_KEY)      # DPS, derived keys
    ... the device connects to azure.hub_host:8883 (CA: sim.ca.cert_pem_path) ...
    azure.wait_telemetry("dev1", 3)                      # [{"body", "properties", ...}]
    azure.set_desired("dev1", {"rate": 5})               # -> the new desired $version
    azure.invoke_method("dev1", "reboot", {"delay": 1})  # -> (status, payload)
    azure.send_c2d("dev1", b"hi", {"k": "v"})            # queued while offline
"""

import asyncio
import base64
import os

from ...core.http import HttpError
from ...core.plugin import Acl, Listener, Plugin, Refuse, Route
from . import certs, sas_check
from .dps import DpsSide, Enrollment, GroupEnrollment
from .hub import CLOUD, AzureDevice, HubSide

HUB, DPS = "azure-hub", "azure-dps"
REPLY_KINDS = ("twin", "desired", "method", "dps")
PORT = 8883


def plugin(**options):
    return AzurePlugin(**options)


def _statuses(value):
    return [int(v) for v in value]


def new_key():
    """A random 32-byte symmetric key, base64 (what the portal generates)."""
    return base64.b64encode(os.urandom(32)).decode()


class AzurePlugin(Plugin):
    name = CLOUD
    reply_kinds = REPLY_KINDS
    max_qos = 1  # SUBSCRIBE QoS 2 is granted as 1 (protocols.md §2.5)
    max_subscriptions = 5  # protocols.md §2.3

    def __init__(
        self,
        hub_host="127.0.0.2",
        dps_host="127.0.0.3",
        hub_name="tether-hub.azure-devices.net",
        id_scope="0ne00000A0A",
        assigned_hub=None,
        port=PORT,
    ):
        super().__init__()
        self.hub_host = hub_host
        self.dps_host = dps_host
        self.hub_name = hub_name  # also accepted in usernames and `sr` (gateway_hostname)
        self.id_scope = id_scope
        self.assigned_hub = assigned_hub or hub_host  # what DPS tells devices to connect to
        self.port = port
        self.hub = HubSide(self)
        self.dps = DpsSide(self)

    def attach(self, front):
        super().attach(front)
        k = front.knobs
        k.declare("azure_twin_errors", [], _statuses)  # next twin replies: these statuses
        k.declare("azure_dps_errors", [], _statuses)  # next DPS replies: these statuses
        k.declare("azure_dps_pending_polls", 1, int)  # status polls answered 202 first
        k.declare("azure_dps_retry_after", 1, int)  # seconds, in 202/429 replies
        k.declare("azure_disconnect_at_expiry", True, bool)  # close at the SAS `se`
        k.declare("azure_connect_delay_s", 0.0, float)  # CONNACK this late (a slow hub)
        k.declare("azure_twin_reply_unsubscribed", True, bool)  # docs/emulator.md, "Azure"

    def listeners(self):
        return [
            Listener(HUB, tls="mutual", port=self.port, host=self.hub_host),
            Listener(DPS, tls="mutual", port=self.port, host=self.dps_host),
        ]

    def routes(self):
        base = "/api/azure/device/{id}/"
        return [
            Route("POST", base + "desired", self._http_desired),
            Route("POST", base + "method", self._http_method),
            Route("POST", base + "c2d", self._http_c2d),
        ]

    # -- hooks: routed by listener ------------------------------------------------------------

    def _side(self, s):
        return self.dps if s.listener.name == DPS else self.hub

    def authenticate(self, s):
        delay = self.front.knobs.azure_connect_delay_s
        if delay > 0:
            return self._slow_authenticate(s, delay)
        return self._side(s).authenticate(s)

    async def _slow_authenticate(self, s, delay):
        await asyncio.sleep(delay)
        return self._side(s).authenticate(s)

    def acl(self, s):
        return self._side(s).acl(s) if s.device is not None else Acl()

    def on_connect(self, s):
        if s.listener.name == HUB:
            self.hub.on_connect(s)

    def on_disconnect(self, s):
        if s.listener.name == HUB:
            self.hub.on_disconnect(s)

    def on_subscribe(self, s, topic, qos):
        if s.listener.name == HUB:
            self.hub.on_subscribe(s, topic, qos)

    def on_publish(self, s, topic, payload, qos, retain):
        return self._side(s).on_publish(s, topic, payload, qos, retain)

    def state(self):
        with self.front.registry.lock:
            return {
                "azure": {
                    "hub": {"host": self.hub_host, "name": self.hub_name, "port": self.port},
                    "dps": {"host": self.dps_host, "id_scope": self.id_scope},
                    "enrollments": sorted(self.dps.enrollments),
                    "groups": sorted(self.dps.groups),
                    "registrations": {
                        k: {n: v for n, v in r.items() if n != "payload"}
                        for k, r in self.dps.registrations.items()
                    },
                }
            }

    # -- identities (any thread) --------------------------------------------------------------

    def ensure_device(self, device_id, key=None, x509=None, secondary_key=None):
        """Register (or update) a hub device; -> the device if it was created, else None."""
        reg = self.front.registry
        with reg.lock:
            dev = reg.find(device_id, CLOUD)
            if dev is not None:
                dev.keys = [key, secondary_key]
                dev.x509 = x509
                return None
            return reg.add(AzureDevice(device_id, key, secondary_key, x509))

    def add_device(self, device_id, key=None, secondary_key=None, x509=None):
        """A hub device. key: base64 symmetric key (default: a new random one unless x509);
        x509: "ca" (a certificate from a trusted CA with CN = device_id, e.g.
        sim.device_files(id)) or a self-signed certificate (PEM/DER; trusted here, matched
        by thumbprint). -> AzureDevice (.key)."""
        if key is None and x509 is None:
            key = new_key()
        mode = self._x509_mode(x509)
        self.ensure_device(device_id, key, mode, secondary_key)
        return self.device(device_id)

    def _x509_mode(self, x509):
        if x509 is None or x509 == "ca":
            return x509
        for listener in (HUB, DPS):
            self.front.trust(listener, certs.to_pem(x509))
        return certs.thumbprints(x509)

    def self_signed_files(self, device_id):
        """Paths of a self-signed certificate and key (CN = device_id) under the workdir."""
        return certs.make_self_signed(
            self.front.workdir / "azure-self-signed" / device_id, device_id
        )

    def device(self, device_id):
        dev = self.front.registry.find(device_id, CLOUD)
        if dev is None:
            raise KeyError(device_id)
        return dev

    def add_enrollment(
        self, registration_id, key=None, x509=None, device_id=None, initial_twin=None
    ):
        """An individual DPS enrollment: key (base64; default a new one unless x509), or
        x509 "ca" / a self-signed certificate. -> the Enrollment (.key)."""
        if key is None and x509 is None:
            key = new_key()
        e = Enrollment(registration_id, key, self._x509_mode(x509), device_id, initial_twin)
        with self.front.registry.lock:
            self.dps.enrollments[registration_id] = e
        return e

    def add_group_enrollment(self, group_id, key=None, x509_ca=None):
        """A group: a symmetric group key (default: a new one unless x509_ca), or an X.509
        CA ("test-ca" = the emulator's own, or a CA certificate, then trusted here)."""
        if x509_ca == "test-ca":
            x509_ca = self.front.ca.cert_der_path.read_bytes()
        elif x509_ca is not None:
            for listener in (HUB, DPS):
                self.front.trust(listener, certs.to_pem(x509_ca))
            x509_ca = certs.to_der(x509_ca)
        if key is None and x509_ca is None:
            key = new_key()
        g = GroupEnrollment(group_id, key, x509_ca)
        with self.front.registry.lock:
            self.dps.groups[group_id] = g
        return g

    @staticmethod
    def derived_key(group_key, registration_id):
        return sas_check.derive_key(group_key, registration_id)

    def registration(self, registration_id):
        with self.front.registry.lock:
            r = self.dps.registrations.get(registration_id)
            return dict(r) if r else None

    # -- what devices did ---------------------------------------------------------------------

    def telemetry(self, device_id):
        with self.front.registry.lock:
            return [dict(r) for r in self.device(device_id).telemetry]

    def wait_telemetry(self, device_id, count=1, timeout=10):
        dev = self.device(device_id)
        self.front.registry.wait(lambda: len(dev.telemetry) >= count, timeout)
        return self.telemetry(device_id)

    def twin(self, device_id):
        with self.front.registry.lock:
            return self.device(device_id).twin.document()

    def wait_twin(self, pred, device_id, timeout=10):
        dev = self.device(device_id)
        return self.front.registry.wait(lambda: pred(dev.twin.document()), timeout)

    def c2d(self, device_id):
        with self.front.registry.lock:
            return [dict(m) for m in self.device(device_id).c2d]

    def wait_c2d_completed(self, device_id, count=1, timeout=10):
        dev = self.device(device_id)
        done = lambda: sum(1 for m in dev.c2d if m["state"] == "completed") >= count  # noqa
        self.front.registry.wait(done, timeout)
        return self.c2d(device_id)

    # -- cloud-initiated (any thread) ---------------------------------------------------------

    def set_desired(self, device_id, patch):
        """Merge a desired patch; notify the device if connected. -> the new $version."""
        return self.front.on_loop(self.hub.set_desired, self.device(device_id), patch)

    def invoke_method(self, device_id, name, payload=None, timeout_s=10):
        """A direct method: -> (status, payload) of the device's response. TimeoutError
        when it does not answer in timeout_s; LookupError when it is not connected."""
        dev = self.device(device_id)
        return self.front.call(
            self.hub.invoke_method, dev, name, payload, timeout_s, timeout=timeout_s + 5
        )

    def send_c2d(self, device_id, body, properties=None, literal_dollar=False):
        """Queue a cloud-to-device message (str or bytes) with its properties ("$.mid",
        "$.ct", ... or application names); delivered now or at the device's next
        subscribed connection. literal_dollar: write "$.x" instead of "%24.x" in the
        bag. -> the message id."""
        body = body.encode() if isinstance(body, str) else body
        return self.front.on_loop(
            self.hub.send_c2d, self.device(device_id), body, properties, literal_dollar
        )

    def set_knobs(self, **changes):
        self.front.knobs.update(**changes)

    # -- dashboard actions ----------------------------------------------------------------------

    def _http_device(self, request):
        dev = self.front.registry.find(request.params["id"], CLOUD)
        if dev is None:
            raise HttpError(404, "no Azure device %r" % request.params["id"])
        return dev

    async def _http_desired(self, request):
        dev = self._http_device(request)
        return {"version": self.hub.set_desired(dev, request.json())}

    async def _http_method(self, request):
        dev, body = self._http_device(request), request.json()
        try:
            status, payload = await self.hub.invoke_method(
                dev, body["name"], body.get("payload"), float(body.get("timeout_s", 10))
            )
        except LookupError as exc:
            raise HttpError(404, str(exc)) from None
        except Exception as exc:  # TimeoutError: the service's 504
            raise HttpError(504, "no response: %r" % exc) from None
        if isinstance(payload, bytes):
            payload = payload.decode("utf-8", "replace")
        return {"status": status, "payload": payload}

    async def _http_c2d(self, request):
        dev, body = self._http_device(request), request.json()
        text = body.get("body", "")
        return {"id": self.hub.send_c2d(dev, text.encode(), body.get("properties"))}


__all__ = ["AzurePlugin", "Refuse", "plugin"]
