"""HubClient: an IoT Hub device on the cloud base (protocols.md §2.1-2.5, §2.11).

The protocol engine behind tether.azure.aio.IoTHubDeviceClient (which adds the SDK's
factories); it speaks MQTT the way azure-iot-device 2.14 does, because that is what the hub
accepts:

- CONNECT: client id = device id, username `{host}/{device}/?api-version=2019-10-01&
  DeviceClientType=...`, a SAS without `skn` minted per connect (tether.sas) and renewed
  before `se` by the base's planned reconnect, or X.509 with no password. CleanSession 0.
- Subscriptions are lazy, one SUBSCRIBE per feature when it is first used or its handler
  is set (twin/res, desired, methods, devicebound: at most 4 of the hub's 5). They are made
  again after every reconnect: the broker's persistent session may be gone.
- Telemetry (QoS 1, never 2) goes through a queue delivered in order by the connection's
  serve loop: on flash with a `store` (tether.cloud.outbox; the channel is the property bag,
  so a message keeps its properties across a reboot), else in RAM (QUEUE_MAX, oldest
  dropped and counted). send_message() returns after the PUBACK, or once queued while
  the hub is unreachable.
- Twin GET / reported PATCH are correlated by `$rid` (tether.cloud.requests); a patch is
  done on `res/204`. Any status >= 300 raises ClientError at once, as the SDK does.
- Desired patches are reconciled by `$version`: after every (re)connect with a desired
  handler set, a GET; the handler gets the whole desired document only when its version is
  newer than the last it saw, and a notification only when newer too.
- Malformed input (non-JSON bodies, a missing `$version`, unknown `$rid`, a method topic
  without `$rid`) is counted in `bad_messages` and logged; the connection stays. A method
  request whose body is not JSON is answered 400 at once (the SDK drops it and lets the
  service time out after 30 s).
"""

from tether import log
from tether.azure import bag
from tether.azure.common import refused, tls_context
from tether.azure.exceptions import (
    OperationTimeout,
)
from tether.azure.features import C2D, DESIRED, METHODS, TWIN, Features
from tether.azure.models import Message
from tether.cloud.client import CloudClient
from tether.compat import MICROPYTHON, const, ticks_diff, ticks_ms

_log = log.getLogger("azure")

API_VERSION = "2019-10-01"  # what the SDK sends (protocols.md §2.11)
CLIENT_TYPE = "tether-azure%2F1.0"
_MAX_D2C = const(262144)  # 256 KB: the hub's limit for one telemetry message


class HubClient(Features, CloudClient):
    MAX_PACKET = 4096 if MICROPYTHON else 140000  # a board: larger ones drained, counted
    QUEUE_MAX = 64  # telemetry kept in RAM without a store
    CONNECT_TIMEOUT_MS = 60000

    def __init__(
        self,
        hostname,
        device_id,
        symmetric_key=None,
        x509=None,
        server_verification_cert=None,
        gateway_hostname=None,
        keep_alive=60,
        sastoken_ttl=3600,
        port=8883,
        store=None,
        max_packet=None,
    ):
        if symmetric_key is None and x509 is None:
            raise ValueError("a symmetric key or an X509 is needed")
        if max_packet:
            self.MAX_PACKET = max_packet
        CloudClient.__init__(
            self, device_id, hostname, port or 8883, keepalive=keep_alive, store=store
        )
        from tether.cloud.requests import Requests

        self._key = symmetric_key
        self._ttl = sastoken_ttl
        self._gateway = gateway_hostname
        self._x509 = x509
        self._ca = server_verification_cert
        self.tls = True
        self.requests = Requests(self, 4)
        self._filters = {
            TWIN: b"$iothub/twin/res/#",
            DESIRED: b"$iothub/twin/PATCH/properties/desired/#",
            METHODS: b"$iothub/methods/POST/#",
        }
        self.set_identity(hostname, device_id, symmetric_key)
        self._want = []  # features in use, in the order first used
        self._subbed = []  # features subscribed on this connection
        self._handlers = {}
        self._dv = None  # the newest desired $version the handler saw
        self._task = None
        self._ext = False  # run() called by someone else (see run())
        self._up = False  # serving: connected as the handlers see it
        self._queue = []  # (bag bytes, payload) without a store
        self.outbox = None
        self._queued = 0  # telemetry accepted this run ...
        self._acked = 0  # ... and delivered (PUBACK), in order
        c = self.counters
        c["telemetry"] = 0
        c["dropped"] = 0
        c["c2d"] = 0
        c["methods"] = 0
        c["desired"] = 0
        c["stale_desired"] = 0
        c["twin_errors"] = 0

    def set_identity(self, hostname, device_id, symmetric_key=None):
        """Connect as `device_id` on `hostname` from the next connect on (what DPS assigned);
        symmetric_key: a new device key (None keeps the current one, or X.509)."""
        if not device_id or "/" in device_id or "+" in device_id or "#" in device_id:
            raise ValueError("device id %r: not empty, no / + #" % (device_id,))
        if symmetric_key is not None:
            self._key = symmetric_key
        user = "%s/%s/?api-version=%s&DeviceClientType=%s" % (
            hostname, device_id, API_VERSION, CLIENT_TYPE,
        )  # fmt: skip
        if self._key is not None:
            from tether.sas import SasCredentials, hub_uri

            self.credentials = SasCredentials(hub_uri(hostname, device_id), self._key, self._ttl)
            self.credentials.username = user
        else:
            self.username = user
        self.hostname = hostname
        self.device_id = self.client_id = device_id
        self.server = self._gateway or hostname
        self._filters[C2D] = ("devices/%s/messages/devicebound/#" % device_id).encode()
        self._events = ("devices/%s/messages/events/" % device_id).encode()
        m = self.mqtt
        if m is not None:  # made at the first connect: it learns the new names too
            m.client_id = device_id
            m._server_hostname = self.server_hostname()
            self.session.resolver.invalidate()

    # -- handler properties ------------------------------------------------------------

    def _set(self, name, feature, fn):
        self._handlers[name] = fn
        if fn is not None:
            self._use(feature)
            if feature == DESIRED:
                self._use(TWIN)  # the reconcile GET needs the replies

    on_message_received = property(
        lambda self: self._handlers.get("c2d"), lambda self, f: self._set("c2d", C2D, f)
    )
    on_method_request_received = property(
        lambda self: self._handlers.get("method"),
        lambda self, f: self._set("method", METHODS, f),
    )
    on_twin_desired_properties_patch_received = property(
        lambda self: self._handlers.get("desired"),
        lambda self, f: self._set("desired", DESIRED, f),
    )
    on_connection_state_change = property(
        lambda self: self._handlers.get("state"), lambda self, f: self._set("state", None, f)
    )

    def _use(self, feature):
        if feature is not None and feature not in self._want:
            self._want.append(feature)
            self.wake()  # the serve loop subscribes it

    @property
    def connected(self):
        return self._up and self.session.state == "ready"

    # -- lifecycle ---------------------------------------------------------------------

    async def connect(self):
        """Connect (stages, TLS, CONNECT, subscriptions); raises CredentialError when the
        hub refuses the login, ConnectionFailedError for anything else."""
        import asyncio

        if self.connected:
            return
        if self._ext:
            # run() is someone else's (the firmware's): wait for its connection, never stop it
            n = 0
            while self._ev is None and n < 100:  # its task has not started yet
                await asyncio.sleep(0.01)
                n += 1
            if not await self.wait(lambda: self.connected, self.CONNECT_TIMEOUT_MS):
                raise OperationTimeout("not connected in %d ms" % self.CONNECT_TIMEOUT_MS)
            return
        s = self.session
        f0 = s.failures
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(CloudClient.run(self))
        t0 = ticks_ms()
        while not self.connected:
            if s.failures > f0:
                err = s.last_error
                await self._halt()
                raise refused(err)
            waited = ticks_diff(ticks_ms(), t0)
            if waited >= self.CONNECT_TIMEOUT_MS:
                await self._halt()
                raise OperationTimeout("not connected in %d ms" % waited)
            if self._until is None:  # its task has not begun yet: wait() would refuse
                await asyncio.sleep(0.01)
            else:  # serve() wakes this once up; a failed round shows within 20 ms
                await self.wait(lambda: self.connected, 20)

    def run(self):
        """The base's run(), for a caller that runs the client itself (the firmware, or
        `asyncio.create_task(client.run())`): known from this call on, before its task first
        runs, so connect() and send_message() wait for its connection instead of starting
        a second one."""
        self._ext = True
        return self._run_ext()

    async def _run_ext(self):
        try:
            await CloudClient.run(self)
        finally:
            self._ext = False

    async def disconnect(self):
        """Send DISCONNECT and stop (queued telemetry stays queued)."""
        m = self.mqtt
        if m is not None and m.connected:
            try:
                await m.disconnect()
            except Exception:
                pass
        await self._halt()

    async def shutdown(self):
        await self.disconnect()
        self._handlers = {}

    async def _halt(self):
        import asyncio

        self.stop()
        t = self._task
        self._task = None
        if t is not None:
            try:
                await asyncio.wait_for(t, 5)
            except BaseException:  # a cancelled or failed run: it is over either way
                pass

    def _state_changed(self):
        fn = self._handlers.get("state")
        if fn is None:
            return
        try:
            r = fn()
            if r is not None and hasattr(r, "send"):
                import asyncio

                asyncio.create_task(self._guarded("on_connection_state_change", r))
        except Exception as exc:
            self.callback_failed("on_connection_state_change", exc)

    async def _guarded(self, name, coro):
        try:
            await coro
        except Exception as exc:
            self.callback_failed(name, exc)

    # -- base hooks --------------------------------------------------------------------

    def tls_context(self):
        if not self.tls:  # tests against a plain scripted broker
            return None
        return tls_context(self._ca, self._x509)

    async def _connect(self):
        if self.mqtt is None:
            from tether.cloud import connect

            self.mqtt = connect.make_mqtt(self)
            self.mqtt._clean = False  # CleanSession 0, as the SDK (the base makes it clean)
        return await CloudClient._connect(self)

    def begin(self):
        if self.store is not None and self.outbox is None:
            from tether.cloud.outbox import Outbox

            self.outbox = Outbox(self.store)

    async def serve(self):
        self._subbed = []
        # Routes first, with no await in between: a persistent session may deliver at once.
        for f in self._want:
            self.router.add(self._filters[f], self._handler_of(f), f == TWIN)
        await self._subscribe_wanted()
        self.ready()
        self._up = True
        self.wake()  # connect() and send_message() wait for this
        self._state_changed()
        try:
            if self._handlers.get("desired") is not None:
                await self._reconcile()
            while True:
                await self._subscribe_wanted()
                await self._deliver()
                await self.wait(self._work, 60000)
        finally:
            self._up = False
            self._state_changed()

    def _work(self):
        return len(self._subbed) < len(self._want) or self._pending()

    async def _subscribe_wanted(self):
        for f in self._want:
            if f not in self._subbed:
                self._subbed.append(f)
                await self.subscribe(self._filters[f], self._handler_of(f), 1, f == TWIN)

    async def _ensure(self, feature):
        self._use(feature)
        if feature not in self._subbed and self.connected:
            self._subbed.append(feature)
            await self.subscribe(
                self._filters[feature], self._handler_of(feature), 1, feature == TWIN
            )

    def _handler_of(self, f):
        if f == TWIN:
            return self._on_twin_reply
        if f == DESIRED:
            return self._on_desired
        if f == METHODS:
            return self._on_method
        return self._on_c2d

    # -- telemetry ---------------------------------------------------------------------

    async def send_message(self, message):
        """Send a Message (or str/bytes) as telemetry, QoS 1. Returns after the PUBACK; while
        the hub is unreachable, once the message is queued (delivered in order later)."""
        if not isinstance(message, Message):
            message = Message(message)
        data = message.data
        if isinstance(data, str):
            data = data.encode()
        elif not isinstance(data, (bytes, bytearray)):
            data = str(data).encode()
        b = bag.encode(message).encode()
        if len(self._events) + len(b) + len(data) > _MAX_D2C:
            raise ValueError("telemetry message over 256 KB")
        n = self._put(b, bytes(data))
        if self._task is None and not self._ext:  # nothing runs the connection yet
            await self.connect()
        await self.wait(lambda: self._acked >= n or not self.connected, 0x3FFFFFFF)

    def _put(self, b, data):
        ob = self.outbox
        if ob is not None:
            if ob.put(b, data) is None:
                self.counters["dropped"] += 1
                _log.warning("store full: telemetry dropped")
                return self._queued  # nothing to wait for
        else:
            q = self._queue
            if len(q) >= self.QUEUE_MAX:
                q.pop(0)
                self._acked += 1  # its sender stops waiting
                self.counters["dropped"] += 1
                _log.warning("%d messages queued: the oldest dropped", len(q))
            q.append((b, data))
        self._queued += 1
        self.wake()
        return self._queued

    def _pending(self):
        return self._queued > self._acked or (
            self.outbox is not None and self.outbox._old and self.store.depth > 0
        )

    async def _publish_bag(self, b, data):
        await self.publish(self._events + b, data, 1)
        self.counters["telemetry"] += 1

    async def _send_counted(self, b, data):
        await self._publish_bag(b, data)
        self._acked += 1
        self.wake()  # its sender waits for this

    async def _deliver(self):
        ob = self.outbox
        if ob is not None:
            await ob.replay(self._publish_bag)  # an earlier boot's messages first
            await ob.flush(self._send_counted)
        q = self._queue
        while q:
            await self._send_counted(q[0][0], q[0][1])
            q.pop(0)  # acknowledged: only now is it the hub's
