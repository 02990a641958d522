"""What the emulated Astarte does with a device's MQTT traffic (protocols.md §5.3-§5.10).

Identity is the client certificate's CN `{realm}/{device id}` (the client id is ignored,
empty is fine), the ACL is `{realm}/{id}/#`. Every publish is checked against the device's
introspection and the realm's interfaces; a refused one is logged as a "rejected" event and
kept in device.rejected, the connection stays up (Astarte's data updater discards it too).
On control/emptyCache the server-owned properties are sent again, then the purge list on
control/consumer/properties.
"""

import asyncio
import datetime
import time

import bson
from bson.codec_options import CodecOptions
from cryptography import x509
from cryptography.x509.oid import NameOID

from ...core.plugin import Refuse
from ...core.topics import matches
from . import interfaces as ifc
from . import properties as purge

MAX_FRAME = 65535  # VerneMQ's max_message_size in Astarte (§5.9)
HISTORY_LEN = 1000
_DECODE = CodecOptions(tz_aware=True, tzinfo=datetime.timezone.utc)
_SUBSCRIBE_WAIT_S = 2.0


class Rejected(Exception):
    pass


def decode_bson(payload):
    try:
        return bson.decode(bytes(payload), codec_options=_DECODE)
    except Exception as exc:  # pymongo raises InvalidBSON and a few others
        raise ifc.Invalid("payload is not a BSON document: %s" % exc)


def encode_doc(iface, path, value, timestamp=None):
    """The BSON the server sends for value on iface+path (None: the empty unset payload)."""
    if value is None:
        return b""
    if iface.object:
        fields = iface.object_fields(path)
        v = {k: ifc.encode_value(fields[k], x) for k, x in value.items()}
    else:
        v = ifc.encode_value(iface.mapping(path), value)
    doc = {"v": v}
    if timestamp is not None:
        doc["t"] = timestamp
    return bson.encode(doc)


class MqttSide:
    def __init__(self, plugin):
        self.plugin = plugin

    @property
    def front(self):
        return self.plugin.front

    def _event(self, dev, kind, text=""):
        self.front.event(dev.id, kind, text, self.plugin.name)

    # -- who connects -------------------------------------------------------------------------

    def authenticate(self, session):
        if not session.peer_cert:
            raise Refuse("no client certificate (Astarte uses mutual TLS)")
        cert = x509.load_der_x509_certificate(session.peer_cert)
        cn = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        realm, _, device_id = (cn[0] if len(cn) == 1 else "").partition("/")
        dev = self.plugin.find(device_id, realm)
        if dev is None:
            raise Refuse("certificate CN %r is no registered realm/device" % (cn,))
        if cert.serial_number in dev.revoked:
            raise Refuse("certificate %x of %s is revoked" % (cert.serial_number, dev.id))
        if self.front.knobs.astarte_refuse_certs:
            raise Refuse("client certificates refused (knob)")
        session.auth = "certificate"
        return dev

    # -- what devices publish -----------------------------------------------------------------

    def on_publish(self, session, topic, payload, qos):
        dev = session.device
        base = dev.base
        if len(payload) > MAX_FRAME:
            self._reject(
                dev, topic, "payload of %d bytes over %d: dropped" % (len(payload), MAX_FRAME)
            )
            self.front.drop(dev.id, self.plugin.name)
            return
        if topic == base:
            return self._introspection(dev, payload)
        rest = topic[len(base) + 1 :]
        if rest == "control/emptyCache":
            dev.empty_cache += 1
            self._event(dev, "empty-cache", payload.decode("latin-1"))
            self.front.spawn(self.resync(dev))
            return
        if rest == "control/producer/properties":
            return self._producer_properties(dev, payload)
        if rest == "capabilities":
            try:
                dev.capabilities = decode_bson(payload)
            except ifc.Invalid as exc:
                return self._reject(dev, topic, str(exc))
            return self._event(dev, "capabilities", str(dev.capabilities))
        if rest.startswith("control/"):
            return self._reject(dev, topic, "not a control topic a device publishes")
        name, _, path = rest.partition("/")
        path = "/" + path if path else ""
        try:
            self._data(dev, name, path, payload, qos)
        except (Rejected, ifc.Invalid) as exc:
            self._reject(dev, topic, str(exc))

    def _reject(self, dev, topic, reason):
        with self.front.registry.lock:
            dev.rejected.append((topic, reason))
        self._event(dev, "rejected", "%s: %s" % (topic, reason))

    def _introspection(self, dev, payload):
        try:
            text = bytes(payload).decode("utf-8")
            found = {}
            for entry in text.split(";") if text else ():
                name, major, minor = entry.split(":")
                if not ifc.NAME_RE.match(name):
                    raise ValueError("bad interface name %r" % name)
                found[name] = (int(major), int(minor))
        except ValueError as exc:
            return self._reject(dev, dev.base, "bad introspection: %s" % exc)
        with self.front.registry.lock:
            dev.introspection = found
            dev.introspections += 1
        self._event(dev, "introspection", text)
        for name, (major, _) in sorted(found.items()):
            if self.plugin.interface(name, major) is None:
                self._event(dev, "unknown-interface", "%s v%d is not installed" % (name, major))

    def _data(self, dev, name, path, payload, qos):
        if dev.introspection is None:
            raise Rejected("data before any introspection")
        if name not in dev.introspection:
            raise Rejected("interface %s is not in the introspection" % name)
        iface = self.plugin.interface(name, dev.introspection[name][0])
        if iface is None:
            raise Rejected(
                "interface %s v%d is not installed" % (name, dev.introspection[name][0])
            )
        if iface.ownership != "device":
            raise Rejected("%s is server-owned: a device may not publish on it" % name)
        doc = decode_bson(payload) if payload else None
        value, t = ifc.check_message(iface, path, doc)
        now = time.time()
        with self.front.registry.lock:
            if iface.properties:
                if value is None:
                    dev.props.pop((name, path), None)
                else:
                    dev.props[(name, path)] = value
            else:
                rec = {
                    "interface": name,
                    "path": path,
                    "value": value,
                    "timestamp": t,
                    "received": now,
                    "qos": qos,
                    "expected_qos": iface.qos(path),
                }
                dev.datastreams.append(rec)
                del dev.datastreams[:-HISTORY_LEN]
        what = "unset" if value is None else repr(value)
        self._event(
            dev, "property" if iface.properties else "datastream", "%s%s %s" % (name, path, what)
        )

    def _producer_properties(self, dev, payload):
        try:
            entries, header = purge.decode(payload)
        except purge.PurgeError as exc:
            return self._reject(dev, dev.base + "/control/producer/properties", str(exc))
        keep = set(entries)
        with self.front.registry.lock:
            gone = sorted(k for k in dev.props if k[0] + k[1] not in keep)
            for key in gone:
                del dev.props[key]
            dev.purges.append({"entries": entries, "header": header, "purged": gone})
        self._event(
            dev,
            "producer-properties",
            "%d set, header %s, purged %s" % (len(entries), header, [n + p for n, p in gone]),
        )

    # -- what the server sends ----------------------------------------------------------------

    async def _send(self, kind, dev, topic, payload, qos):
        """front.publish through the common knobs (in order, unlike front.reply)."""
        knobs = self.front.knobs
        if kind in knobs.mute:
            return self._event(dev, "muted", "%s not sent (knob)" % kind)
        if kind in knobs.malformed:
            payload = payload[: max(1, len(payload) // 2)]
            self._event(dev, "malformed", "%s truncated (knob)" % kind)
        if knobs.reply_delay_s:
            await asyncio.sleep(knobs.reply_delay_s)
        await self.front.publish(topic, payload, min(qos, self._granted(dev, topic)))
        self._event(dev, "sent", "%s -> %s" % (kind, topic))

    def _granted(self, dev, topic):
        # The QoS a message goes out at is at most the one the subscription was granted.
        granted = [q for f, q in dev.sub_qos.items() if matches(f, topic)]
        return max(granted) if granted else 2

    async def resync(self, dev):
        """After emptyCache: every server-owned property again, then the purge list."""
        want = dev.base + "/control/consumer/properties"
        deadline = time.monotonic() + _SUBSCRIBE_WAIT_S
        while want not in dev.subscriptions and time.monotonic() < deadline:
            await asyncio.sleep(0.02)  # its SUBSCRIBE went out first; amqtt may lag
        entries = []
        for (name, path), value in sorted(dev.server_props.items()):
            iface = self.plugin.device_interface(dev, name)
            if iface is None:
                continue
            entries.append(name + path)
            topic = "%s/%s%s" % (dev.base, name, path)
            await self._send("property", dev, topic, encode_doc(iface, path, value), 2)
        await self._send("purge", dev, want, purge.encode(entries), 2)

    async def server_message(self, dev, iface, path, value, timestamp=None):
        """Send a server-owned value (None: unset) to a device that declares the interface.
        The broker delivers it now, queues it for a persistent session that is away (QoS 1
        and 2), or drops it. Returns True when the device was connected."""
        if self.plugin.device_interface(dev, iface.name) is None:
            return False
        connected = dev.connected
        topic = "%s/%s%s" % (dev.base, iface.name, path)
        kind = "property" if iface.properties else "datastream"
        payload = encode_doc(iface, path, value, timestamp)
        await self._send(kind, dev, topic, payload, iface.qos(path))
        return connected
