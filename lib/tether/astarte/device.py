"""DeviceMqtt: astarte.device.DeviceMqtt's API on the Tether cloud base (docs/astarte.md).

    device = DeviceMqtt(device_id, realm, secret, "https://api.example/pairing", "/flash/ast")
    device.add_interfaces_from_dir("/flash/interfaces")
    device.set_events_callbacks(on_connected, on_data_received, on_disconnected)
    device.connect()            # in a running loop: starts the client task, returns at once
    device.send("org.x.Sensors", "/s1/temperature", 21.5, timestamp)

Per connection (a pre-connect stage, then serve()): the pairing stage makes sure there is
a certificate (key and CSR made on the device the first time and kept; verify on the first
connect of this object and after a failed attempt; a new one, verified, when refused, not
valid or in its last quarter: tether.astarte.certificate) and knows the broker; then
mutual TLS, MQTT 3.1.1, empty client id, clean session, keepalive 60; SUBSCRIBE QoS 2
control/consumer/properties and every server-owned interface; introspection; emptyCache;
every stored device property; producer/properties (big-endian header); on_connected once
all of these are acknowledged.
persistent_session=True (not in SDK 0.14; the Rust SDK's way): client id "realm/device_id"
and, after a first full resync, CleanSession 0; a kept session skips it (tether.astarte.sync).

Sends are synchronous, as in the SDK: checked against the interface, encoded, queued, and
published in order by serve() with the mapping's QoS. Unlike the SDK nothing raises
DeviceDisconnectedError: a property is stored and goes out with the next connection; a
guaranteed or unique datastream waits (in the flash outbox when the client has a `store`,
else in RAM, at most QUEUE_MAX); an unreliable one is dropped and counted. A server message
that does not fit (bad BSON, wrong type, unknown interface, a purge-list bomb) is counted in
`bad_messages` and logged; the connection stays.
"""

import asyncio
import os

from tether.astarte import codec, sync
from tether.astarte.errors import (
    InterfaceFileNotFoundError,
    InterfaceNotFoundError,
    PersistencyDirectoryNotFoundError,
    ValidationError,
)

# the run-time interfaces, loaded before build_once reads any (it drops what it loads)
from tether.astarte.iface import parse as iface_parse
from tether.astarte.iface import read as iface_read
from tether.astarte.iface import read_all as iface_read_all
from tether.cloud.client import CloudClient
from tether.compat import MICROPYTHON, build_once

_LOST = 7  # on_disconnected's rc for a connection lost (paho's MQTT_ERR_CONN_LOST)


def _isdir(path):
    try:
        return os.stat(path)[0] & 0x4000 != 0
    except OSError:
        return False


class DeviceMqtt(CloudClient):
    MAX_PACKET = 4096  # server messages are small; larger are drained and counted
    # Sends waiting in RAM; the oldest is dropped (counted) beyond. send() is synchronous
    # (the SDK's API): a burst faster than the broker's acks waits here.
    QUEUE_MAX = 64 if MICROPYTHON else 4096
    PAIRING_TIMEOUT_MS = 60000
    WINDOW = 8  # datastreams in flight at once (the MQTT client's max_inflight)

    def __init__(
        self,
        device_id,
        realm,
        credentials_secret,
        pairing_base_url,
        persistency_dir,
        database=None,
        ignore_ssl_errors=False,
        ca=None,
        store=None,
        keepalive=60,
        sync_mode=False,
        key=None,
        key_cert=None,
        se=None,
        persistent_session=False,
    ):
        persistency_dir = str(persistency_dir)
        if not _isdir(persistency_dir):
            raise PersistencyDirectoryNotFoundError("%s is not a directory" % persistency_dir)
        # A persistent session needs a client id (the Rust SDK's "realm/device_id")
        cid = realm + "/" + device_id if persistent_session else ""
        CloudClient.__init__(self, cid, "", 8883, keepalive=keepalive, sync_mode=sync_mode)
        self.store = store
        from tether.astarte.properties import makedirs

        here = persistency_dir.rstrip("/") + "/" + device_id
        self.device_id = device_id
        self.realm = realm
        self.ignore_ssl_errors = ignore_ssl_errors
        # Pairing (tether.astarte.pairing) is loaded by the pairing stage only: what it
        # needs is kept here, the certificate and key as the last stage left them.
        self._secret = credentials_secret
        self._pairing_url = pairing_base_url
        self._ca = sync.read_ca(ca)
        self._crypto = here + "/crypto"
        self.pairing = None  # the last stage's Pairing (CPython keeps it; a board drops it)
        self._key_pem = self._cert_pem = None
        # key: None (a P-256 key made here and kept in flash) or `se05x:token=0x...`, a key
        # inside the SE05x (key_cert: its certificate, for the public key; se: the
        # tether.hal.se05x SecureElement, default the board's)
        self._se_key = (key, key_cert, se) if key else None
        self._cert_fresh = False  # obtained, not yet taken by the broker
        self._cert_bad = False  # refused or not valid, and no new one yet
        self._cert_left = None  # (seconds left, ticks then) of the certificate in use
        self.credentials = sync.CertLife(self)
        makedirs(self._crypto)
        if database is None:
            from tether.astarte.properties import PropertyFile

            makedirs(here + "/caching")
            database = PropertyFile(here + "/caching/properties.bson")
        self.properties = database
        self.interfaces = {}  # name -> Interface, in the order added
        self._base = realm + "/" + device_id
        self._persist = persistent_session  # CleanSession 0 once synced (tether.astarte.sync)
        self._synced = None  # the introspection of the last full resync (None: none yet)
        self._changed = []  # "iface/path" of device properties the server has not got yet
        self._q = []  # [topic bytes, payload, qos, is_property]
        self._online = False
        self._stopping = False
        self._task = None
        self._outbox = None
        self._stage_connects = -1  # session.connects when the pairing stage last ran
        self._on_connected = self._on_data = self._on_disconnected = self._cb_loop = None
        c = self.counters
        c["sent"] = 0  # messages acknowledged (QoS 1/2) or written (QoS 0)
        c["received"] = 0  # server values delivered
        c["dropped_unreliable"] = 0  # unreliable datastreams sent while offline
        c["dropped_queue_full"] = 0  # the RAM queue was full: the oldest went
        c["purged"] = 0  # server properties removed by a consumer purge list
        c["resumed"] = 0  # connects on a kept session: no resync
        st = self.session.stages  # pairing after wifi/time, before the broker's DNS
        i = 0
        while i < len(st) and not (isinstance(st[i], tuple) and st[i][0] == "dns"):
            i += 1
        st.insert(i, ("pairing", self._pairing_stage, self.PAIRING_TIMEOUT_MS))

    def _pairing_stage(self):
        return sync.pairing_stage(self)

    def _api(self):
        from tether.astarte.pairing import Api

        return Api(self._pairing_url, self._ca, self.ignore_ssl_errors)

    # -- the SDK's API -----------------------------------------------------------------

    def get_device_id(self):
        return self.device_id

    def is_connected(self):
        return self._online

    @property
    def connected(self):
        # Connected and resynced; False as soon as serve() ends (the session's state
        # changes later), and every change pulses wake().
        return self._online

    def set_events_callbacks(
        self, on_connected=None, on_data_received=None, on_disconnected=None, loop=None
    ):
        self._on_connected = on_connected
        self._on_data = on_data_received
        self._on_disconnected = on_disconnected
        self._cb_loop = loop

    # Interfaces are read through build_once: on a board the parser (tether.astarte.
    # interfaces) is dropped again once they are read; only tether.astarte.iface stays.

    def add_interface_from_json(self, interface_json):
        self._add(build_once(iface_parse, interface_json))

    def add_interface_from_file(self, interface_file):
        self._add(build_once(iface_read, str(interface_file)))

    def add_interfaces_from_dir(self, interfaces_dir):
        """Every *.json (interface JSON) and *.ifc (compact form, tools/astarte_ifc.py) file,
        in name order."""
        d = str(interfaces_dir).rstrip("/")
        if not _isdir(d):
            raise InterfaceFileNotFoundError('"%s" does not exist or is not a directory' % d)
        names = [n for n in sorted(os.listdir(d)) if n.endswith(".json") or n.endswith(".ifc")]
        for iface in build_once(iface_read_all, d, names):
            self._add(iface)

    def remove_interface(self, interface_name):
        iface = self._iface(interface_name)
        del self.interfaces[interface_name]
        if iface.type == "properties":
            self.properties.delete_props_from_interface(interface_name)
        if self._online:
            self._spawn(sync.interfaces_changed(self, iface, False))

    def connect(self):
        """Start connecting: in a running loop a task (returns at once, like the SDK);
        without one, sync mode: returns once connected (then call update() regularly)."""
        if self._task is not None:
            return
        self._stopping = False
        self.session._stop = False
        try:
            asyncio.current_task()
        except RuntimeError:
            self.async_mode = False
            self.start()
            return
        self._task = asyncio.create_task(self.run())

    def disconnect(self):
        """Send DISCONNECT and stop reconnecting; on_disconnected gets rc 0."""
        self._stopping = True
        task, self._task = self._task, None
        m = self.mqtt
        if task is not None and m is not None and m.connected:
            self._spawn(self._bye(m))
        else:
            self.stop()

    async def adisconnect(self, timeout_ms=5000):
        """disconnect(), awaited until the client has stopped."""
        task = self._task
        self.disconnect()
        # Polled: stop() ends the base's timer task, which wait() needs for its deadline.
        while task is not None and not task.done() and timeout_ms > 0:
            await asyncio.sleep(0.02)
            timeout_ms -= 20

    def send(self, interface_name, interface_path, payload, timestamp=None):
        iface = self._own(interface_name)
        if iface.aggregation == "object":
            raise ValidationError("%s is an object aggregate: use send_aggregate" % iface.name)
        if payload is None:
            raise ValidationError("payload should be different from None")
        if isinstance(payload, dict):
            raise ValidationError("payload for individual interfaces should not be a dict")
        m = iface.check_individual(interface_path, payload, timestamp)
        data = codec.encode(m, payload, timestamp)
        if iface.type == "properties":
            self.properties.store_prop(iface.name, iface.version_major, interface_path, payload)
            return self._prop(iface.name + interface_path, data)
        self._stream(iface.name + interface_path, data, m.qos)

    def send_aggregate(self, interface_name, interface_path, payload, timestamp=None):
        iface = self._own(interface_name)
        if iface.aggregation != "object":
            raise ValidationError("%s is not an object aggregate: use send" % iface.name)
        if payload is None:
            raise ValidationError("payload should be different from None")
        iface.check_object(interface_path, payload, timestamp)
        data = codec.encode_object(iface, interface_path, payload, timestamp)
        path = "" if interface_path == "/" else interface_path
        self._stream(iface.name + path, data, iface.qos())

    def unset_property(self, interface_name, interface_path):
        iface = self._own(interface_name)
        if iface.type != "properties":
            raise ValidationError("%s is a datastream: only a property can be unset" % iface.name)
        m = iface.mapping(interface_path)
        if m is None:
            raise ValidationError("path %s is not in %s" % (interface_path, iface.name))
        if not m.allow_unset:
            raise ValidationError("%s%s: allow_unset is false" % (iface.name, m.endpoint))
        self.properties.delete_prop(iface.name, interface_path)
        self._prop(iface.name + interface_path, b"")

    # -- more than the SDK -------------------------------------------------------------

    def get_property(self, interface_name, path):
        """A stored property value (device- or server-owned), or None."""
        iface = self._iface(interface_name)
        return self.properties.load_prop(iface.name, iface.version_major, path)

    async def flush(self, timeout_ms=10000):
        """Wait until every queued send went out; True when the queue is empty."""
        return await self.wait(lambda: not self._q and not self._box_depth(), timeout_ms)

    # -- internals ---------------------------------------------------------------------

    def _iface(self, name):
        iface = self.interfaces.get(name)
        if iface is None:
            raise InterfaceNotFoundError("interface %s not declared in introspection" % name)
        return iface

    def _own(self, name):
        iface = self._iface(name)
        if iface.ownership != "device":
            raise ValidationError("the interface %s is not owned by the device" % name)
        return iface

    def _add(self, iface):
        old = self.interfaces.pop(iface.name, None)
        self.interfaces[iface.name] = iface
        if old is not None and old.version_major != iface.version_major:
            self.properties.delete_props_from_interface(iface.name)  # a new major
        if self._online:
            self._spawn(sync.interfaces_changed(self, iface, True))

    def _spawn(self, coro):
        try:
            asyncio.create_task(coro)
        except RuntimeError:  # no loop (sync mode between updates): next update runs it
            self._loop.create_task(coro)

    def _callback(self, cb, *args):
        if cb is None:
            return
        if self._cb_loop is not None:
            self._cb_loop.call_soon_threadsafe(cb, self, *args)
            return
        try:
            cb(self, *args)
        except Exception as exc:
            self.callback_failed(cb, exc)

    def _put(self, suffix, data, qos, prop):
        q = self._q
        if len(q) >= self.QUEUE_MAX:
            q.pop(0)
            self.counters["dropped_queue_full"] += 1
        q.append(((self._base + "/" + suffix).encode(), data, qos, prop))
        self.wake()

    def _prop(self, suffix, data):
        if self._online:
            self._put(suffix, data, 2, True)
        else:  # stored: the next connection sends it (sync.send_changed) or all (resync)
            sync.changed(self, suffix)

    def _box(self):
        if self._outbox is None and self.store is not None:
            from tether.cloud.outbox import Outbox

            self._outbox = Outbox(self.store)
        return self._outbox

    def _box_depth(self):
        return self._outbox is not None and self.store.depth

    def _stream(self, suffix, data, qos):
        if self._online:
            self._put(suffix, data, qos, False)
        elif not qos:
            self.counters["dropped_unreliable"] += 1
        elif self._box() is not None:
            self._outbox.put(("%d%s" % (qos, suffix)).encode(), data)
        else:
            self._put(suffix, data, qos, False)

    def tls_context(self):
        return sync.tls_context(self)

    async def serve(self):
        try:
            await sync.after_connack(self)
            self._online = True
            self.ready()
            self.wake()  # a wait() on `connected` re-checks (the base does not pulse here)
            self._callback(self._on_connected)
            while True:
                await sync.drain(self)
                self.wake()  # flush() re-checks
                await self.wait(lambda: self._q or self._box_depth(), 30000)
        finally:
            was, self._online = self._online, False
            sync.spill(self)
            self.wake()  # a wait() on `connected` re-checks (the base does not pulse here)
            if was:
                self._callback(self._on_disconnected, 0 if self._stopping else _LOST)

    async def _bye(self, m):
        try:
            await m.disconnect()
        finally:
            self.stop()

    def _on_message(self, topic, payload):
        sync.on_message(self, topic, payload)

    def _on_purge(self, topic, payload):
        sync.on_purge(self, topic, payload)


if not MICROPYTHON:
    # What a connect needs, loaded at import as the SDK's modules are (not inside the first
    # connect: ~6 ms of it). A board loads them at the pairing stage, then drops them. One
    # string, not import statements: ~70 bytes less of flash for what a board never runs.
    for _m in (
        "certs http resolver session tlsctx tlshost zlib astarte.certificate cloud.connect "
        "cloud.router hal.clock"
    ).split():
        __import__("tether." + _m)
    del _m
