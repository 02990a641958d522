"""Astarte (Astarte MQTT v1 + the Pairing API) as an emulator plug-in (protocols.md §5).

Listeners: "astarte-pairing" (HTTPS, the Pairing API, pairing.py) and "astarte-mqtt"
(mutual TLS; the certificate CN `{realm}/{id}` is the identity, broker_side.py). The realm
"test" exists from the start with an RSA pairing key; interfaces are installed with
add_interface(). Test methods (on sim.clouds["astarte"], from the test's thread):

    astarte = sim.clouds["astarte"]
    astarte.add_interfaces_dir("tests/ref/astarte_interfaces")
    jwt = astarte.agent_jwt()                 # a pairing token for realm "test"
    astarte.pairing_url                       # https://127.0.0.1:PORT/pairing
    ... the device registers, gets its certificate, connects, publishes ...
    astarte.wait_datastream(device_id, "org.x.Sensors", timeout=10)
    astarte.set_server_property(device_id, "org.x.Settings", "/threshold", 1.5)
"""

import datetime
import os
from pathlib import Path

from ...core.plugin import Acl, Listener, Plugin
from ...core.registry import Device
from . import dashboard
from . import interfaces as ifc
from .broker_side import MqttSide
from .pairing import Pairing, Realm, new_secret, valid_device_id

CLOUD = "astarte"
REPLY_KINDS = ("property", "purge", "datastream")


def plugin(realm="test"):
    return AstartePlugin(realm)


class AstarteDevice(Device):
    def __init__(self, device_id, realm, secret):
        super().__init__(device_id, CLOUD)
        self.realm = realm
        self.secret = secret
        self.secret_used = False  # a registration is repeatable until the secret is used
        self.initial_introspection = None
        self.certs = {}  # serial -> not valid after (issued by the credentials call)
        self.revoked = set()
        self.introspection = None  # {name: (major, minor)} once the device sent it
        self.datastreams = []  # {"interface", "path", "value", "timestamp", "received", "qos"}
        self.props = {}  # device-owned properties: (interface, path) -> value
        self.server_props = {}  # server-owned properties: (interface, path) -> value
        self.rejected = []  # (topic, reason)
        self.purges = []  # producer purge lists: {"entries", "header", "purged"}
        self.empty_cache = 0
        self.introspections = 0  # introspection messages received (a resumed session: none)
        self.capabilities = None
        self.sub_qos = {}  # filter -> granted QoS

    @property
    def base(self):
        return "%s/%s" % (self.realm, self.id)

    def as_dict(self):
        out = super().as_dict()
        out.update(
            realm=self.realm,
            introspection={k: "%d.%d" % v for k, v in (self.introspection or {}).items()},
            rejected=len(self.rejected),
            datastreams=len(self.datastreams),
        )
        return out


class AstartePlugin(Plugin):
    name = CLOUD
    reply_kinds = REPLY_KINDS

    def __init__(self, realm="test"):
        super().__init__()
        self.default_realm = realm
        self.realms = {}  # name -> Realm; the default one is made (or loaded) by attach()
        self.interfaces = {}  # (name, major) -> ifc.Interface, realm-wide as in Astarte
        self.pairing = Pairing(self)
        self.mqtt = MqttSide(self)

    def attach(self, front):
        super().attach(front)
        # The command line's way in: the default realm's key is kept in the workdir (so a
        # device registered with it stays valid across runs) and interfaces placed in
        # workdir/astarte/interfaces are installed at every start.
        self.dir = front.workdir / "astarte"
        self.dir.mkdir(parents=True, exist_ok=True)
        key_file = self.dir / ("realm-%s.key.pem" % self.default_realm)
        if key_file.exists():
            self.realms[self.default_realm] = Realm(
                self.default_realm, None, key_file.read_bytes()
            )
        else:
            self.realms[self.default_realm] = Realm(self.default_realm)
            fd = os.open(str(key_file), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(self.realms[self.default_realm].private_key_pem())
        self.realm_key_file = key_file
        front.knobs.declare("astarte_cert_validity_s", 86400.0, float)
        front.knobs.declare("astarte_expired_certs", False, bool)
        front.knobs.declare("astarte_refuse_certs", False, bool)
        front.knobs.declare("astarte_refuse_credentials", False, bool)

    async def start(self):
        found = sorted((self.dir / "interfaces").glob("*.json"))
        for path in found:
            try:
                self.add_interface(path)
            except ifc.InterfaceError as exc:
                self.front.event(None, "error", "%s: %s" % (path.name, exc), CLOUD)
        self.front.event(
            None,
            "astarte",
            "pairing %s, realm %s (key %s), %d interfaces"
            % (self.pairing_url, self.default_realm, self.realm_key_file, len(self.interfaces)),
            CLOUD,
        )

    def listeners(self):
        return [
            Listener("astarte-pairing", kind="https", tls="server"),
            Listener("astarte-mqtt", tls="mutual"),
        ]

    def routes(self):
        return self.pairing.routes("astarte-pairing") + dashboard.routes(self)

    # -- hooks ----------------------------------------------------------------------------------

    def authenticate(self, session):
        return self.mqtt.authenticate(session)

    def acl(self, session):
        base = session.device.base
        return Acl(publish=[base + "/#"], subscribe=[base + "/#"])

    def on_subscribe(self, session, topic, qos):
        with self.front.registry.lock:
            session.device.sub_qos[topic] = qos

    def on_unsubscribe(self, session, topic):
        with self.front.registry.lock:
            session.device.sub_qos.pop(topic, None)

    def on_disconnect(self, session):
        with self.front.registry.lock:
            session.device.sub_qos = {}

    def on_publish(self, session, topic, payload, qos, retain):
        return self.mqtt.on_publish(session, topic, payload, qos)

    # -- realm, registry ------------------------------------------------------------------------

    def host(self):
        return self.front.host if self.front.host not in ("0.0.0.0", "::", "") else "127.0.0.1"

    def mqtt_port(self):
        return self.front.ports["astarte-mqtt"]

    @property
    def pairing_url(self):
        """The pairing_base_url a device is given."""
        return "https://%s:%d/pairing" % (self.host(), self.front.ports["astarte-pairing"])

    def add_realm(self, name, key_type="rsa", private_key_pem=None):
        self.realms[name] = Realm(name, key_type, private_key_pem)
        return self.realms[name]

    def realm(self, name=None):
        return self.realms[name or self.default_realm]

    def realm_private_key_pem(self, realm=None):
        return self.realm(realm).private_key_pem()

    def agent_jwt(self, realm=None, ttl_s=300, paths=(".*::.*",), **kw):
        return self.realm(realm).agent_jwt(ttl_s, paths, **kw)

    def find(self, device_id, realm=None):
        dev = self.front.registry.find(device_id, CLOUD)
        if dev is None or (realm is not None and dev.realm != realm):
            return None
        return dev

    def register(self, device_id, realm=None, initial_introspection=None):
        """A new credentials secret, or None when the device already used its secret (the
        pairing API's 422). Registering again before that issues a new secret."""
        realm = realm or self.default_realm
        if not valid_device_id(device_id):
            raise ValueError("%r is not a 128-bit base64url device id" % device_id)
        with self.front.registry.lock:
            dev = self.front.registry.find(device_id, CLOUD)
            if dev is not None and (dev.secret_used or dev.realm != realm):
                return None
            if dev is None:
                dev = self.front.registry.add(AstarteDevice(device_id, realm, None))
            dev.secret = new_secret()
            dev.initial_introspection = initial_introspection
        self.front.event(device_id, "registered", "realm %s" % realm, CLOUD)
        return dev.secret

    def unregister(self, device_id, realm=None):
        dev = self.find(device_id, realm)
        if dev is None:
            return False
        with self.front.registry.lock:
            dev.secret, dev.secret_used = None, False
            dev.revoked.update(dev.certs)
        self.front.drop(device_id, CLOUD)
        self.front.event(device_id, "unregistered", "", CLOUD)
        return True

    def revoke_certificates(self, device_id):
        """Every certificate issued so far is refused by the broker and verify says REVOKED
        (the device must ask for new credentials)."""
        dev = self._dev(device_id)
        with self.front.registry.lock:
            dev.revoked.update(dev.certs)

    # -- interfaces -----------------------------------------------------------------------------

    def add_interface(self, source):
        """Install an interface (a dict, JSON text or a file path) in every realm."""
        iface = ifc.load(source)
        self.interfaces[(iface.name, iface.major)] = iface
        return iface

    def add_interfaces_dir(self, directory):
        return [self.add_interface(p) for p in sorted(Path(directory).glob("*.json"))]

    def interface(self, name, major=None):
        if major is not None:
            return self.interfaces.get((name, major))
        found = [i for (n, _), i in self.interfaces.items() if n == name]
        return max(found, key=lambda i: i.major) if found else None

    def device_interface(self, dev, name):
        """The interface as the device declared it, or None when not in its introspection."""
        if not dev.introspection or name not in dev.introspection:
            return None
        return self.interfaces.get((name, dev.introspection[name][0]))

    # -- queries (any thread) -------------------------------------------------------------------

    def _dev(self, device_id):
        dev = self.find(device_id)
        if dev is None:
            raise KeyError("no Astarte device %r" % device_id)
        return dev

    def introspection(self, device_id):
        with self.front.registry.lock:
            intro = self._dev(device_id).introspection
            return None if intro is None else dict(intro)

    def datastreams(self, device_id, interface=None):
        with self.front.registry.lock:
            return [
                dict(r)
                for r in self._dev(device_id).datastreams
                if interface is None or r["interface"] == interface
            ]

    def properties(self, device_id, ownership="device"):
        """{"interface/path": value} of the device-owned (or "server") properties set."""
        dev = self._dev(device_id)
        with self.front.registry.lock:
            src = dev.props if ownership == "device" else dev.server_props
            return {n + p: v for (n, p), v in src.items()}

    def rejected(self, device_id):
        with self.front.registry.lock:
            return list(self._dev(device_id).rejected)

    def purges(self, device_id):
        with self.front.registry.lock:
            return [dict(p) for p in self._dev(device_id).purges]

    def wait(self, predicate, timeout=10):
        """Wait (bounded) until predicate() is truthy; it runs under the registry lock."""
        return self.front.registry.wait(predicate, timeout)

    def wait_datastream(self, device_id, interface, path=None, pred=None, timeout=10, after=0):
        """The first record (of index >= after) on interface (and path) for which pred holds."""
        dev = self._dev(device_id)

        def check():
            for rec in dev.datastreams[after:]:
                if rec["interface"] == interface and path in (None, rec["path"]):
                    if pred is None or pred(rec):
                        return dict(rec)
            return None

        return self.wait(check, timeout)

    def wait_property(self, device_id, interface, path, value=None, unset=False, timeout=10):
        dev = self._dev(device_id)

        def check():
            key = (interface, path)
            if unset:
                return key not in dev.props
            return key in dev.props and (value is None or dev.props[key] == value)

        return self.wait(check, timeout)

    # -- server-side actions (any thread) -------------------------------------------------------

    def server_interface(self, dev, name, want_type):
        iface = self.device_interface(dev, name) or self.interface(name)
        if iface is None:
            raise KeyError("interface %s is not installed" % name)
        if iface.ownership != "server" or iface.type != want_type:
            raise ValueError("%s is not a server-owned %s interface" % (name, want_type))
        return iface

    def set_server_property(self, device_id, interface, path, value, notify=True):
        """Set a server-owned property; sent now when the device is connected and declares
        it (notify=False: stored only, as if set while the device was away)."""
        dev = self._dev(device_id)
        iface = self.server_interface(dev, interface, "properties")
        value, _ = ifc.check_message(iface, path, {"v": value})
        with self.front.registry.lock:
            dev.server_props[(interface, path)] = value
        self.front.event(dev.id, "server-property", "%s%s = %r" % (interface, path, value), CLOUD)
        if notify:
            return self.front.call(self.mqtt.server_message, dev, iface, path, value)
        return False

    def unset_server_property(self, device_id, interface, path, notify=True):
        dev = self._dev(device_id)
        iface = self.server_interface(dev, interface, "properties")
        ifc.check_message(iface, path, None)  # needs allow_unset
        with self.front.registry.lock:
            dev.server_props.pop((interface, path), None)
        self.front.event(dev.id, "server-property", "%s%s unset" % (interface, path), CLOUD)
        if notify:
            return self.front.call(self.mqtt.server_message, dev, iface, path, None)
        return False

    def send_server_datastream(self, device_id, interface, path, value, timestamp=None):
        """Push a server-owned datastream value (a dict for an object aggregate) at the
        mapping's QoS; timestamp (aware datetime) defaults to now when the mapping wants
        one. Returns False when the device is not connected (nothing is queued)."""
        dev = self._dev(device_id)
        iface = self.server_interface(dev, interface, "datastream")
        m = iface.mappings[0] if iface.object else iface.mapping(path)
        if m is not None and m.explicit_timestamp and timestamp is None:
            timestamp = datetime.datetime.now(datetime.timezone.utc)
        doc = {"v": value} if timestamp is None else {"v": value, "t": timestamp}
        value, timestamp = ifc.check_message(iface, path, doc)
        return self.front.call(self.mqtt.server_message, dev, iface, path, value, timestamp)

    def clear_session(self, device_id):
        """Disconnect the device and clear its MQTT session, as Astarte does when it lost
        track of the device: it must resync (session present false at its next connect)."""
        self._dev(device_id)
        return self.front.call(self.front.mqtt.clear_session, device_id, CLOUD)

    def seed_device_property(self, device_id, interface, path, value):
        """A device-owned property the server remembers and the device does not (say, after
        the device lost its storage): the next producer purge list must remove it."""
        dev = self._dev(device_id)
        with self.front.registry.lock:
            dev.props[(interface, path)] = value

    def state(self):
        return dashboard.state(self)


__all__ = ["AstarteDevice", "AstartePlugin", "plugin"]
