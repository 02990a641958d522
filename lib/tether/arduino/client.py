"""ArduinoCloudClient: the arduino-iot-cloud-py API on the cloud base (tether.cloud).

    client = ArduinoCloudClient(device_id=DEVICE_ID, username=DEVICE_ID, password=SECRET_KEY)
    client.register("sw1", value=None, on_write=lambda client, value: print(value))
    client.start()

This module holds only the Arduino protocol; connecting, reconnecting, the handler queue,
waits and the scheduler are the base's. Per connection:

1. SUBSCRIBE /a/d/{dev}/e/i and /a/d/{dev}/c/dw (QoS 1); PUBLISH DeviceBegin on c/up.
2. Discovery, both flows at once: PUBLISH ThingBegin on c/up; the cloud answers either
   with ThingUpdate on c/dw (command flow) or with a `thing_id` record on e/i (legacy
   flow, sent on SUBSCRIBE). The first valid answer wins and picks the flow used for last
   values. No answer: ThingBegin again after 2 s, 4 s, ... 32 s; after DISCOVERY_RETRIES the
   connection is dropped and the session backs off. An empty thing id ("device not linked
   to a thing") is logged and waited out with ten times longer delays.
3. Attach: SUBSCRIBE /a/t/{thing}/e/i (and shadow/i in the legacy flow) and ask for the
   last values (LastValuesBegin, or getLastValues) on every attach. The reply initialises
   unset variables, and sets read-write variables (with on_write) that have no local change
   waiting for its acknowledgement, calling on_write when the value differs: a dashboard
   write made while the device was offline arrives (cloud wins on sync, as in the C++
   library). Asked again every 30 s while a variable is still unset.
4. Ready: every local change is pushed at once as one SenML pack on /a/t/{thing}/e/o (QoS
   1); a variable stays dirty until its PUBACK. Cloud writes on e/i call on_write from the
   handler queue, as they arrive. ThingDetach unsubscribes the thing topics and goes back
   to step 2; a ThingUpdate naming another thing moves to it.

Nothing the cloud sends can stop this: every message is decoded inside a guard, and a bad
one is counted (counters["bad_messages"]) and logged; the connection stays up.
"""

# First: from source it compiles the MQTT client while the heap is emptiest.
from tether.cloud.client import CloudClient  # noqa: I001

from tether import log
from tether.arduino.records import unix_time
from tether.arduino.variables import Variables
from tether.compat import ticks_add, ticks_diff, ticks_ms

_log = log.getLogger("arduino")

_DEFAULT_SERVER = "iot.arduino.cc"
_PORT_PASSWORD = 8884
_PORT_CERTIFICATE = 8885

# Which discovery flow delivered the thing id (it decides how last values are asked for).
_LEGACY = "legacy"
_COMMAND = "command"

# tether.arduino.protocol (with tether.cbor and tether.senml) loads when the first client is
# made: importing the package or the client (e.g. for a type) does not pay for the codecs.
protocol = None


def _load_protocol():
    global protocol
    if protocol is None:
        from tether.arduino import apply  # noqa: F401 (what handles cloud values)
        from tether.arduino import protocol as p

        protocol = p


def _cert_auth(ssl_params):
    return "keyfile" in ssl_params or "certfile" in ssl_params


def _secrets_override():
    # Optional CLOUD_SERVER / CLOUD_PORT / CLOUD_CA in the user's secrets.py point an
    # unchanged script at a local broker or emulator (docs/arduino.md). CPython's stdlib
    # also has a `secrets` module; it defines none of these names.
    try:
        import secrets
    except ImportError:
        return None, None, None
    return (
        getattr(secrets, "CLOUD_SERVER", None),
        getattr(secrets, "CLOUD_PORT", None),
        getattr(secrets, "CLOUD_CA", None),
    )


class ArduinoCloudClient(Variables, CloudClient):
    # Protocol level announced in DeviceBegin: the arduino-iot-cloud-py release whose
    # messages this client speaks, as the cloud knows it ("1.4.1-async").
    LIB_VERSION = "1.4.1"

    # Timings (ms). Instances may override them, e.g. tests and emulators.
    DISCOVERY_FIRST_MS = 2000
    DISCOVERY_MAX_MS = 32000
    DISCOVERY_RETRIES = 10
    NOT_LINKED_FACTOR = 10  # delays grow this much while the device is not linked to a thing
    LAST_VALUES_MS = 30000
    LAST_VALUES_RETRIES = 10
    # Largest MQTT packet accepted from the cloud; larger ones are drained and counted. The
    # cloud's messages are small SenML packs (a few hundred bytes for dozens of variables).
    MAX_PACKET = 2048
    _ca_override = None  # CLOUD_CA from secrets.py (set on the instance when given)

    def __init__(
        self,
        device_id,
        username=None,
        password=None,
        ssl_params={},  # noqa: B006 (the original signature; never mutated here)
        server=None,
        port=None,
        keepalive=10,
        ntp_server="pool.ntp.org",
        ntp_timeout=3,
        sync_mode=False,
        store=None,
    ):
        _load_protocol()  # now, while the heap is young (compiling from source needs room)
        device_id = _text(device_id)
        ssl_params = dict(ssl_params)
        password = _text(password) if password is not None else None
        o_server, o_port, o_ca = _secrets_override() if server is None else (None, None, None)
        if port is None:
            port = o_port
        if port is None:
            cert = password is None or _cert_auth(ssl_params)
            port = _PORT_CERTIFICATE if cert else _PORT_PASSWORD
        CloudClient.__init__(
            self,
            device_id,
            server or o_server or _DEFAULT_SERVER,
            port,
            keepalive=keepalive,
            sync_mode=sync_mode,
            store=store,
        )
        self.device_id = device_id
        self.username = _text(username) if username is not None else None
        self._password = password
        self.ssl_params = ssl_params
        if o_ca is not None:  # rare: the class default (None) keeps the attribute table small
            self._ca_override = o_ca
        self.ntp_server = ntp_server
        self.ntp_timeout = ntp_timeout
        self.ntp_servers = (ntp_server,)
        self.ntp_timeout_ms = ntp_timeout * 1000
        self.records = {}
        self.thing_id = None
        self.tz_offset = None
        self.tz_dst_until = None
        c = self.counters
        c["writes"] = 0  # variables written by the cloud (on_write called or value set)
        c["pushes"] = 0  # packs acknowledged by the cloud
        c["bad_records"] = 0  # records refused one by one (the rest of their pack applied)
        c["unknown_records"] = 0  # records naming no registered variable
        c["rejected_thing_ids"] = 0  # thing ids that are not UUIDs
        c["not_linked"] = 0  # "device not linked to a thing" answers
        c["discovery_retries"] = 0  # ThingBegin sent again after no answer
        c["last_values"] = 0  # last-values replies applied
        c["unknown_commands"] = 0  # c/dw commands this client does not implement
        dev = "/a/d/" + device_id + "/"
        self._d_ei = (dev + "e/i").encode()
        self._d_dw = (dev + "c/dw").encode()
        self._d_up = (dev + "c/up").encode()
        self._t = None  # the thing's topics: (e/i, e/o) as bytes
        self._flow = None
        self._offered = None  # latest valid thing id the cloud offered ("" = not linked)
        self._detached = False
        self._dirty = False
        self._lv_acked = None  # acknowledged generations when last values were asked (apply)
        # Optional tether.cloud.outbox.Outbox (made from `store` when run() begins): a value
        # changed while offline survives a reboot and is delivered after it.
        self.outbox = None

    def start(self, interval=1.0, backoff=1.2):
        """Async mode: run forever. Sync mode: return once connected to a thing."""
        CloudClient.start(self)

    # -- local changes and the outbox ------------------------------------------------------

    def _changed(self):
        self._dirty = True
        if self.outbox is not None:
            from tether.arduino.offline import save_dirty

            save_dirty(self)
        self.wake()

    def begin(self):
        if self.outbox is not None or self.store is not None:
            from tether.arduino import offline  # only with a store

            offline.begin(self)

    # -- connection --------------------------------------------------------------------

    def tls_context(self):
        """The ssl_params translated (tether.arduino.ssl_params); built once, at the first
        connect. `_tls_context` is the name the bench overrides."""
        return self._tls_context()

    def _tls_context(self):
        from tether.arduino.ssl_params import client_context

        return client_context(self)

    def server_hostname(self):
        return self.ssl_params.get("server_hostname", self.server)

    async def serve(self):
        self.thing_id = None
        self._offered = None
        self._flow = None
        self._detached = False
        await self.subscribe(self._d_ei, self._on_device_pack)
        await self.subscribe(self._d_dw, self._on_command)
        mode = "async" if self.async_mode else "sync"
        await self._command(protocol.device_begin(self.LIB_VERSION + "-" + mode))
        while True:
            thing = await self._discover()
            await self._attach(self.mqtt, thing)
            await self._serve_thing(thing)
            await self._detach(thing)

    def _command(self, payload):
        return self.publish(self._d_up, payload, 1)

    async def _discover(self):
        """Return a valid thing id; raise after DISCOVERY_RETRIES unanswered ThingBegins.

        ThingBegin goes out even when the legacy answer (sent on SUBSCRIBE) is already
        here, so the cloud sees the same sequence whichever flow it speaks.
        """
        delay = self.DISCOVERY_FIRST_MS
        tries = 0
        while True:
            if tries >= self.DISCOVERY_RETRIES:
                raise OSError("no thing id after %d ThingBegin messages" % tries)
            if tries:
                self.counters["discovery_retries"] += 1
            tries += 1
            await self._command(protocol.thing_begin())
            wait = delay * self.NOT_LINKED_FACTOR if self._offered == "" else delay
            if await self.wait(self._has_thing, wait):
                return self._offered
            delay = min(delay * 2, self.DISCOVERY_MAX_MS)

    def _has_thing(self):
        return bool(self._offered)

    async def _attach(self, mqtt, thing):
        t = "/a/t/" + thing + "/"
        self._t = ((t + "e/i").encode(), (t + "e/o").encode())
        self.thing_id = thing
        self._detached = False
        await self.subscribe(self._t[0], self._on_write)
        if self._flow == _LEGACY:
            await self.subscribe(t + "shadow/i", self._on_shadow)
        _log.info("attached to thing %s (%s flow)", thing, self._flow)
        self.ready()

    async def _detach(self, thing):
        self.thing_id = None
        self.session.syncing()
        await self.unsubscribe(self._t[0])
        if self._flow == _LEGACY:
            await self.unsubscribe("/a/t/" + thing + "/shadow/i")
        _log.info("detached from thing %s", thing)

    def _still_attached(self, thing):
        return not self._detached and self._offered == thing

    async def _serve_thing(self, thing):
        """Push changes until the thing is detached or replaced (or the connection dies)."""
        lv_due = ticks_ms()  # last values at every attach, right away
        lv_tries = 0
        while self._still_attached(thing):
            now = ticks_ms()
            if ticks_diff(lv_due, now) <= 0:
                lv_due = ticks_add(now, self.LAST_VALUES_MS)
                if not lv_tries or (
                    lv_tries < self.LAST_VALUES_RETRIES and self._apply().needs_last_values(self)
                ):
                    lv_tries += 1
                    await self._apply().request_last_values(self, thing)
                elif self._dst_passed():
                    lv_tries = 1  # a new timezone period: ask again (the C++ client does)
                    self.tz_dst_until = None
                    await self._apply().request_last_values(self, thing)
            await self._push()
            if not self._still_attached(thing):
                break
            wait = ticks_diff(lv_due, ticks_ms())
            await self.wait(self._push_or_detach, max(wait, 1))

    def _dst_passed(self):
        until = self.tz_dst_until
        return bool(until) and unix_time() >= until

    def _push_or_detach(self):
        return self._dirty or self._detached or self._offered != self.thing_id

    def _send(self, channel, payload):
        return self.publish(self._t[1], payload, 1)

    async def _push(self):
        self._dirty = False
        outbox = self.outbox
        if outbox is not None:
            await outbox.replay(self._send)  # values an earlier boot never delivered first
        objs = []
        gens = []
        for obj in self.records.values():
            if obj.dirty:
                objs.append(obj)
                gens.append(obj._gen)
            elif outbox is not None:
                outbox.delivered(obj.name, obj._acked)  # a cloud write made it obsolete
        if objs:
            await self.publish(self._t[1], protocol.pack(objs), 1)
            # Only now is the value the cloud's: a failed publish leaves it dirty.
            for i in range(len(objs)):
                objs[i].acked(gens[i])
                if outbox is not None:
                    outbox.delivered(objs[i].name, gens[i])
            self.counters["pushes"] += 1
        if outbox is not None:
            outbox.commit()  # one meta-file write for the whole pack

    # -- cloud -> device (handlers, run from the base's queue) ---------------------------

    def _apply(self):
        from tether.arduino import apply  # loaded with the codecs (_load_protocol)

        return apply

    def _on_write(self, topic, payload):
        self._apply().apply_pack(self, payload, topic, False)

    def _on_shadow(self, topic, payload):
        self._apply().apply_pack(self, payload, topic, True)

    def _offer(self, thing, flow):
        if thing == "":
            self.counters["not_linked"] += 1
            _log.warning("device not linked to a thing: link it in the Arduino Cloud; waiting")
            if not self._offered:
                self._offered = ""
            return
        if thing == self._offered:
            return
        if self._flow is None or self.thing_id is None:
            self._flow = flow
        self._offered = thing

    def _on_command(self, topic, payload):
        tag, arg = protocol.decode_command(payload)
        if tag == protocol.THING_UPDATE:
            self._offer(arg, _COMMAND)
        elif tag == protocol.THING_DETACH:
            if arg != self.thing_id:
                raise protocol.ProtocolError(
                    "ThingDetach for %r, attached to %r" % (arg, self.thing_id)
                )
            self._detached = True
            self._offered = None
        elif tag == protocol.LAST_VALUES_UPDATE:
            self._apply().apply_pack(self, arg, topic, True)
        elif tag == protocol.TIMEZONE_DOWN:
            self.tz_offset, self.tz_dst_until = arg
            _log.info("timezone offset %d s until %d", arg[0], arg[1])
        else:
            self.counters["unknown_commands"] += 1
            _log.warning("command 0x%06x not handled", tag)

    def _on_device_pack(self, topic, payload):
        # Legacy discovery: [{0: "thing_id", 3: "<uuid>"}] on /a/d/{dev}/e/i.
        found = False
        for rec in protocol.decode_pack(payload):
            if rec.get("n") == "thing_id":
                found = True
                try:
                    thing = protocol.check_thing_id(rec.get("vs"))
                except protocol.ProtocolError:
                    self.counters["rejected_thing_ids"] += 1
                    raise
                self._offer(thing, _LEGACY)
        if not found:
            raise protocol.ProtocolError("device message without a thing_id record")


def _text(s):
    return s.decode() if isinstance(s, (bytes, bytearray)) else s
