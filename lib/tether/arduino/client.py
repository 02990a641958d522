"""ArduinoCloudClient: the arduino-iot-cloud-py API on Tether's MQTT client and session.

    client = ArduinoCloudClient(device_id=DEVICE_ID, username=DEVICE_ID, password=SECRET_KEY)
    client.register("sw1", value=None, on_write=lambda client, value: print(value))
    client.start()

Per connection (run by tether.session, which reconnects with backoff):

1. SUBSCRIBE /a/d/{dev}/e/i and /a/d/{dev}/c/dw (QoS 1); PUBLISH DeviceBegin on c/up.
2. Discovery, both flows at once: PUBLISH ThingBegin on c/up; the cloud answers either
   with ThingUpdate on c/dw (command flow) or with a `thing_id` record on e/i (legacy
   flow, sent on SUBSCRIBE). The first valid answer wins and picks the flow used for last
   values. No answer: ThingBegin again after 2 s, 4 s, ... 32 s; after DISCOVERY_RETRIES the
   connection is dropped and the session backs off. An empty thing id ("device not linked
   to a thing") is logged and waited out with ten times longer delays.
3. Attach: SUBSCRIBE /a/t/{thing}/e/i (and shadow/i in the legacy flow); if a variable has
   no value yet, ask for the last values (LastValuesBegin, or getLastValues). Either
   reply initialises only variables that are still uninitialised; retried every 30 s.
4. Ready: every local change is pushed at once as one SenML pack on /a/t/{thing}/e/o (QoS
   1); a variable stays dirty until its PUBACK. Cloud writes on e/i call on_write from the
   MQTT reader, as they arrive. ThingDetach unsubscribes the thing topics and goes back to
   step 2; a ThingUpdate naming another thing moves to it.

Nothing the cloud sends can stop this: every message is decoded inside a guard, and a bad
one is counted (counters["bad_messages"]) and logged; the connection stays up.
"""

import asyncio
import sys

from tether import log
from tether.arduino import protocol
from tether.arduino.records import CloudObject, Task, unix_time
from tether.arduino.scheduler import Scheduler
from tether.compat import print_exception, ticks_add, ticks_diff, ticks_ms
from tether.session import Session

_log = log.getLogger("arduino")

_DEFAULT_SERVER = "iot.arduino.cc"
_PORT_PASSWORD = 8884
_PORT_CERTIFICATE = 8885

# Which discovery flow delivered the thing id (it decides how last values are asked for).
_LEGACY = "legacy"
_COMMAND = "command"

# Names the cloud uses for itself inside SenML packs.
_TZ_NAMES = ("tz_offset", "tz_dst_until")


def _cert_auth(ssl_params):
    return "keyfile" in ssl_params or "certfile" in ssl_params


def _read(path):
    with open(path, "rb") as f:
        return f.read()


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


class ArduinoCloudClient:
    # Protocol level announced in DeviceBegin: the arduino-iot-cloud-py release whose
    # messages this client speaks, as the cloud knows it ("1.4.1-async").
    LIB_VERSION = "1.4.1"

    # Timings (ms). Instances may override them, e.g. tests and emulators.
    BACKOFF_MIN_MS = 1000
    BACKOFF_MAX_MS = 32000
    DISCOVERY_FIRST_MS = 2000
    DISCOVERY_MAX_MS = 32000
    DISCOVERY_RETRIES = 10
    NOT_LINKED_FACTOR = 10  # delays grow this much while the device is not linked to a thing
    LAST_VALUES_MS = 30000
    LAST_VALUES_RETRIES = 10
    MAX_PACKET = 16384  # largest MQTT packet accepted from the cloud; larger ones are dropped

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
    ):
        self.device_id = _text(device_id)
        self.username = _text(username) if username is not None else None
        self._password = _text(password) if password is not None else None
        self.ssl_params = dict(ssl_params)
        o_server, o_port, o_ca = _secrets_override() if server is None else (None, None, None)
        self._ca_override = o_ca
        self.server = server or o_server or _DEFAULT_SERVER
        if port is None:
            port = o_port
        if port is None:
            cert = self._password is None or _cert_auth(self.ssl_params)
            port = _PORT_CERTIFICATE if cert else _PORT_PASSWORD
        self.port = port
        self.keepalive = keepalive
        self.ntp_server = ntp_server
        self.ntp_timeout = ntp_timeout
        self.async_mode = not sync_mode
        self.records = {}
        self.thing_id = None
        self.tz_offset = None
        self.tz_dst_until = None
        self.counters = {
            "writes": 0,  # variables written by the cloud (on_write called or value set)
            "pushes": 0,  # packs acknowledged by the cloud
            "callback_errors": 0,  # on_read/on_write/on_run/on_active that raised
            "bad_messages": 0,  # cloud messages refused (malformed or not fitting)
            "bad_records": 0,  # records refused one by one (the rest of their pack applied)
            "reconnects": 0,  # connections after the first
            "unknown_records": 0,  # records naming no registered variable
            "rejected_thing_ids": 0,  # thing ids that are not UUIDs
            "not_linked": 0,  # "device not linked to a thing" answers
            "discovery_retries": 0,  # ThingBegin sent again after no answer
            "last_values": 0,  # last-values replies applied
            "unknown_commands": 0,  # c/dw commands this client does not implement
        }
        # Test and emulator hooks: a replacement MQTTClient class and open_connection.
        self.mqtt_factory = None
        self.open_connection = None
        self.mqtt = None
        self.scheduler = Scheduler(self._callback_failed)
        self.session = Session(
            self._connect,
            self._serve,
            backoff_min_ms=self.BACKOFF_MIN_MS,
            backoff_max_ms=self.BACKOFF_MAX_MS,
        )
        if _needs_clock_stage():
            self.session.add_stage("time", self._set_time, ntp_timeout * 3000)
        self.session.add_stage("dns", self._resolve, 10000)
        self._flow = None
        self._offered = None  # latest valid thing id the cloud offered ("" = not linked)
        self._detached = False
        self._dirty = False
        self._wake = None
        self._loop = None
        self._sched_task = None
        # Optional tether.store.StateOutbox: a value changed while offline survives a
        # reboot and is delivered after it (docs/resilience.md).
        self.outbox = None

    # -- the original API ---------------------------------------------------------------

    def register(self, aiotobj, coro=None, **kwargs):
        """register("name", value=None, on_read=..., on_write=..., on_run=..., interval=1.0)
        or register(obj) for a composite type or a Task. Returns the object."""
        if isinstance(aiotobj, str):
            aiotobj = CloudObject(aiotobj, **kwargs)
            if aiotobj.value is None and aiotobj.on_read is not None:
                # A first reading now, so the value can go out with the first push. A
                # sensor that fails here is handled like at any later turn: counted and
                # logged, the variable registered anyway; the scheduler reads it again.
                try:
                    aiotobj.value = aiotobj.on_read(self)
                except Exception as exc:
                    self._callback_failed(aiotobj, exc)
        elif not isinstance(aiotobj, CloudObject):
            raise TypeError("register() takes a name or a cloud object")
        old = self.records.get(aiotobj.name)
        if old is not None:
            self.scheduler.remove(old)
        self.records[aiotobj.name] = aiotobj
        aiotobj._notify = self._changed
        if aiotobj.scheduled:
            self.scheduler.add(aiotobj)
        if aiotobj.dirty:
            self._changed()
        return aiotobj

    def __getitem__(self, key):
        if key in _TZ_NAMES:
            return getattr(self, key)
        if key == "thing_id":
            return self.thing_id
        obj = self.records[key]
        return obj if obj._FIELDS else obj.value

    def __setitem__(self, key, value):
        self.records[key].value = value

    def __contains__(self, key):
        return key in self.records or key in _TZ_NAMES or key == "thing_id"

    def get(self, key, default=None):
        if key in self:
            value = self[key]
            if value is not None:
                return value
        return default

    def update_systime(self, server=None, timeout=None):
        """Set the clock from NTP now (MicroPython boards; no-op where the OS keeps time)."""
        try:
            import ntptime
        except ImportError:
            return
        try:
            ntptime.host = server or self.ntp_server
            ntptime.timeout = timeout or self.ntp_timeout
            ntptime.settime()
        except Exception as exc:
            _log.error("NTP failed: %s", exc)

    def start(self, interval=1.0, backoff=1.2):
        """Async mode: run forever. Sync mode: return once connected to a thing."""
        if self.async_mode:
            asyncio.run(self.run())
            return
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            if hasattr(asyncio, "set_event_loop"):
                asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._begin())
        self._loop.run_until_complete(self._until_ready())

    def update(self):
        """Sync mode: one bounded step (network, due callbacks, pushes); a few ms."""
        if self.async_mode:
            raise RuntimeError("update() is for sync_mode=True; async mode runs by itself")
        if self._loop is None:
            self.start()
        self._loop.run_until_complete(_pause_ms(2))

    # -- asyncio API --------------------------------------------------------------------

    async def run(self):
        """Run the client as a task among others: `asyncio.create_task(client.run())`."""
        await self._begin()
        try:
            await self.session.run()
        finally:
            self._end()

    def stop(self):
        """End run() (or the sync-mode background work) after closing the connection."""
        self.session.stop()
        self._end()

    @property
    def connected(self):
        return self.session.state == "ready"

    def stats(self):
        """All counters, plus the session's and the MQTT connection's."""
        out = dict(self.counters)
        out["state"] = self.session.state
        out["connect_failures"] = self.session.failures
        if self.mqtt is not None and hasattr(self.mqtt, "stats"):
            for k, v in self.mqtt.stats.items():
                out["mqtt_" + k] = v
        return out

    # -- background work ------------------------------------------------------------------

    async def _begin(self):
        if self.outbox is not None:
            self.session.store = self.outbox.store  # queue depth and drops in diagnostics
            self._restore()
        self._wake = asyncio.Event()
        if self._sched_task is None:
            self._sched_task = asyncio.create_task(self._schedule_loop())
        if not self.async_mode:
            asyncio.create_task(self.session.run())

    def _end(self):
        if self._sched_task is not None:
            self._sched_task.cancel()
            self._sched_task = None

    async def _until_ready(self):
        while self.session.state != "ready":
            await _pause_ms(10)

    async def _schedule_loop(self):
        # The one loop behind every on_read/on_run/Task/Schedule (tether.arduino.scheduler).
        while True:
            wait = self.scheduler.run_due(self)
            await _pause_ms(wait)

    def _callback_failed(self, obj, exc):
        self.counters["callback_errors"] += 1
        _log.error("%s: callback raised %s: %s (still registered)", obj.name, _name(exc), exc)
        if log.getLevel() <= log.DEBUG:
            print_exception(exc)

    def _changed(self):
        self._dirty = True
        if self.outbox is not None:
            self._save_dirty()
        if self._wake is not None:
            self._wake.set()

    def _restore(self):
        # Values an earlier boot queued but never delivered: like the cloud's last values
        # they initialise only variables the app left unset; _push delivers them first.
        for e in self.outbox.leftovers():
            try:
                self._apply_pack(e.payload, "outbox", True)
            except Exception as exc:
                self._bad("outbox", exc)

    def _save_dirty(self):
        # On flash at once: the change must survive a reboot before it is delivered.
        for obj in self.records.values():
            if obj.dirty and self.outbox.needs(obj.name, obj._gen):
                recs = []
                obj.records(recs)
                self.outbox.save(obj.name, obj._gen, protocol.values(recs))

    async def _resolve(self):
        # The session's cached resolver, asked after the WiFi stage brought the link up
        # (getaddrinfo blocks the loop on MicroPython). Test transports resolve nothing.
        if self.mqtt_factory is None and self.open_connection is None:
            self.session.address = await self.session.resolver.resolve(self.server, self.port)

    async def _set_time(self):
        try:
            from tether.hal import clock
        except ImportError:
            return
        await clock.ensure_time((self.ntp_server,), self.ntp_timeout * 1000)

    # -- connection -----------------------------------------------------------------------

    def _tls_context(self):
        from tether import tlsctx

        p = self.ssl_params
        # verify_mode=CERT_NONE (0) is how scripts for the original client turned checks
        # off; here it is the same explicit opt-out as {"insecure": True}.
        insecure = bool(p.get("insecure")) or p.get("verify_mode", 2) == 0
        if insecure:
            _log.warning("TLS verification is OFF (ssl_params): the server is not checked")
        cadata = p.get("cadata")
        if cadata is None and p.get("cafile"):
            cadata = _read(p["cafile"])
        if cadata is None and self._ca_override:
            cadata = _read(self._ca_override)
        if cadata is None:
            cadata = _default_roots(self.port, _cert_auth(p))
        cert = p.get("certfile")
        key = p.get("keyfile")
        if isinstance(key, str) and key.startswith("pkcs11:"):
            # CPython with the key in a PKCS#11 token (pin, module_path, engine_path).
            from tether import hsm

            q = dict(p)
            q.pop("cafile", None)
            q["cadata"] = cadata
            q["verify_mode"] = 0 if insecure else 2
            return hsm.context_from_ssl_params(q)
        if isinstance(key, str) and key.startswith("se05x:"):
            # Key (and usually certificate) in the board's SE05x secure element.
            from tether import creds

            got = creds.load_credentials({"key": key, "cert": cert})
            got["cadata"] = cadata
            return creds.make_context(got, insecure)
        # Paths are read here; bytes (DER) are used as they are. The firmware passes an
        # SE05x key this way: a reference key plus ecdsa_sign_callback, which must reach
        # the native context or the handshake would sign with the reference, not the chip.
        if isinstance(cert, str):
            cert = _read(cert)
        if isinstance(key, str):
            key = _read(key)
        hook = p.get("ecdsa_sign_callback")
        if hook is None:
            return tlsctx.client_context(cadata=cadata, cert=cert, key=key, insecure=insecure)
        from tether import creds

        got = {"cadata": cadata, "ecdsa_sign_callback": hook}
        if cert is not None or key is not None:
            got["cert"] = cert
            got["key"] = key
        return creds.make_context(got, insecure)

    async def _connect(self):
        factory = self.mqtt_factory
        if factory is None:
            from tether.mqtt import MQTTClient as factory
        kw = {}
        if self.open_connection is not None:
            kw["open_connection"] = self.open_connection
        mqtt = factory(
            self.device_id,
            self.session.address or self.server,
            self.port,
            user=self.username,
            password=self._password,
            keepalive=self.keepalive,
            ssl=self._tls_context(),
            server_hostname=self.ssl_params.get("server_hostname", self.server),
            clean_session=True,
            max_packet=self.MAX_PACKET,
            on_message=self._on_message,
            **kw,
        )
        _log.info("connecting to %s:%d", self.server, self.port)
        await mqtt.connect()
        self.mqtt = mqtt
        if self.session.connects >= 1:
            self.counters["reconnects"] += 1
        return mqtt

    # -- per connection: discovery, attach, push --------------------------------------------

    async def _serve(self, mqtt):
        dev = self.device_id
        self.thing_id = None
        self._offered = None
        self._flow = None
        self._detached = False
        await mqtt.subscribe(protocol.device_topic(dev, "e/i"), 1)
        await mqtt.subscribe(protocol.device_topic(dev, "c/dw"), 1)
        mode = "async" if self.async_mode else "sync"
        await self._command(mqtt, protocol.device_begin(self.LIB_VERSION + "-" + mode))
        while True:
            thing = await self._discover(mqtt)
            await self._attach(mqtt, thing)
            await self._serve_thing(mqtt, thing)
            await self._detach(mqtt, thing)

    async def _command(self, mqtt, payload):
        await mqtt.publish(protocol.device_topic(self.device_id, "c/up"), payload, 1)

    async def _discover(self, mqtt):
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
            await self._command(mqtt, protocol.thing_begin())
            wait = delay * self.NOT_LINKED_FACTOR if self._offered == "" else delay
            if await self._wait_for(self._has_thing, wait):
                return self._offered
            delay = min(delay * 2, self.DISCOVERY_MAX_MS)

    def _has_thing(self):
        return bool(self._offered)

    async def _attach(self, mqtt, thing):
        self.thing_id = thing
        self._detached = False
        await mqtt.subscribe(protocol.thing_topic(thing, "e/i"), 1)
        if self._flow == _LEGACY:
            # Also when every value is set: the timezone refresh asks for last values too.
            await mqtt.subscribe(protocol.thing_topic(thing, "shadow/i"), 1)
        _log.info("attached to thing %s (%s flow)", thing, self._flow)
        self.session.ready()

    async def _detach(self, mqtt, thing):
        self.thing_id = None
        self.session.syncing()
        await mqtt.unsubscribe(protocol.thing_topic(thing, "e/i"))
        if self._flow == _LEGACY:
            await mqtt.unsubscribe(protocol.thing_topic(thing, "shadow/i"))
        _log.info("detached from thing %s", thing)

    def _needs_last_values(self):
        for obj in self.records.values():
            if not obj.initialized:
                return True
        return False

    async def _request_last_values(self, mqtt, thing):
        if self._flow == _LEGACY:
            await mqtt.publish(
                protocol.thing_topic(thing, "shadow/o"), protocol.get_last_values(), 1
            )
        else:
            await self._command(mqtt, protocol.last_values_begin())

    def _still_attached(self, thing):
        return not self._detached and self._offered == thing

    async def _serve_thing(self, mqtt, thing):
        """Push changes until the thing is detached or replaced (or the connection dies)."""
        lv_due = ticks_ms()  # first last-values request right away
        lv_tries = 0
        while self._still_attached(thing):
            now = ticks_ms()
            if lv_tries < self.LAST_VALUES_RETRIES and ticks_diff(lv_due, now) <= 0:
                if self._needs_last_values():
                    lv_tries += 1
                    await self._request_last_values(mqtt, thing)
                    lv_due = ticks_add(now, self.LAST_VALUES_MS)
                elif self._dst_passed():
                    lv_tries = 0  # a new timezone period: ask again (the C++ client does)
                    self.tz_dst_until = None
                    await self._request_last_values(mqtt, thing)
                    lv_due = ticks_add(now, self.LAST_VALUES_MS)
                else:
                    lv_due = ticks_add(now, self.LAST_VALUES_MS)
            await self._push(mqtt, thing)
            if not self._still_attached(thing):
                break
            wait = ticks_diff(lv_due, ticks_ms())
            await self._wait_for(self._push_or_detach, max(wait, 1))

    def _dst_passed(self):
        until = self.tz_dst_until
        return bool(until) and unix_time() >= until

    def _push_or_detach(self):
        return self._dirty or self._detached or self._offered != self.thing_id

    async def _push(self, mqtt, thing):
        self._dirty = False
        outbox = self.outbox
        if outbox is not None:
            # Values an earlier boot queued and never delivered go first.
            topic = protocol.thing_topic(thing, "e/o")
            await outbox.replay(lambda p: mqtt.publish(topic, p, 1))
        objs = []
        gens = []
        recs = []
        for obj in self.records.values():
            if obj.dirty:
                objs.append(obj)
                gens.append(obj._gen)
                obj.records(recs)
            elif outbox is not None:
                outbox.delivered(obj.name, obj._acked)  # a cloud write made it obsolete
        if not objs:
            return
        payload = protocol.values(recs)
        del recs
        await mqtt.publish(protocol.thing_topic(thing, "e/o"), payload, 1)
        # Only now is the value the cloud's: a failed publish leaves it dirty for next time.
        for i in range(len(objs)):
            objs[i].acked(gens[i])
            if outbox is not None:
                outbox.delivered(objs[i].name, gens[i])
        self.counters["pushes"] += 1

    async def _wait_for(self, pred, ms):
        """Wait until pred() is true or ms pass; woken by every incoming event."""
        deadline = ticks_add(ticks_ms(), ms)
        while not pred():
            left = ticks_diff(deadline, ticks_ms())
            if left <= 0:
                return False
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), left / 1000)
            except asyncio.TimeoutError:
                pass
        return True

    # -- cloud -> device ----------------------------------------------------------------

    def _on_message(self, topic, payload, retain=False, qos=0):
        """MQTT on_message: dispatch by topic; nothing raised here reaches the MQTT layer."""
        try:
            self._dispatch(topic, payload)
        except Exception as exc:
            self._bad(topic, exc)
        if self._wake is not None:
            self._wake.set()

    def _dispatch(self, topic, payload):
        thing = self.thing_id
        if thing is not None and topic.startswith("/a/t/"):
            if topic == protocol.thing_topic(thing, "e/i"):
                self._apply_pack(payload, topic, False)
                return
            if topic == protocol.thing_topic(thing, "shadow/i"):
                self._apply_pack(payload, topic, True)
                return
        dev = self.device_id
        if topic == protocol.device_topic(dev, "c/dw"):
            self._on_command(topic, payload)
        elif topic == protocol.device_topic(dev, "e/i"):
            self._on_device_pack(topic, protocol.decode_pack(payload))
        else:
            _log.debug("message on %s ignored", topic)

    def _bad(self, topic, exc):
        self.counters["bad_messages"] += 1
        _log.warning("bad message on %s: %s: %s", topic, _name(exc), exc)

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
            self._apply_pack(arg, topic, True)
        elif tag == protocol.TIMEZONE_DOWN:
            self.tz_offset, self.tz_dst_until = arg
            _log.info("timezone offset %d s until %d", arg[0], arg[1])
        else:
            self.counters["unknown_commands"] += 1
            _log.warning("command 0x%06x not handled", tag)

    def _on_device_pack(self, topic, records):
        # Legacy discovery: [{0: "thing_id", 3: "<uuid>"}] on /a/d/{dev}/e/i.
        found = False
        for rec in records:
            if rec.get("n") == "thing_id":
                found = True
                value = rec.get("vs")
                try:
                    thing = protocol.check_thing_id(value)
                except protocol.ProtocolError:
                    self.counters["rejected_thing_ids"] += 1
                    raise
                self._offer(thing, _LEGACY)
        if not found:
            raise protocol.ProtocolError("device message without a thing_id record")

    def _apply_pack(self, payload, topic, last_values):
        # Record by record: a record of the wrong shape is left out and counted by _apply,
        # the rest of its pack still applies. Malformed CBOR still refuses the whole pack.
        errors = []
        records = protocol.decode_pack(payload, errors)
        first_error = str(errors[0]) if errors else None
        self._apply(records, topic, last_values, len(errors), first_error)

    def _apply(self, records, topic, last_values, bad=0, first_error=None):
        """Apply a SenML pack from the cloud: writes (e/i) or last values (initial only).

        Records that fit are applied even when others in the same pack do not; the pack
        then counts as one bad message and each refused record as a bad record (`bad` of
        them were already refused by the decoder). on_write runs once per variable, after
        the pack.
        """
        touched = []
        unknown = 0
        for rec in records:
            name = rec.get("n")
            value = _value(rec)
            if type(name) is not str or not name or value is None:
                bad += 1
                first_error = first_error or "record without a name or value"
                continue
            i = name.find(":")
            base = name if i < 0 else name[:i]
            field = None if i < 0 else name[i + 1 :]
            if base in _TZ_NAMES and field is None:
                if type(value) is not int:
                    bad += 1
                    first_error = first_error or "%s is not an integer" % name
                else:
                    setattr(self, base, value)
                continue
            obj = self.records.get(base)
            if obj is None or isinstance(obj, Task):
                unknown += 1
                continue
            # Values the variable will not take are still checked, so junk is counted.
            keep = (last_values and not obj.cloud_uninitialized(field)) or (
                not last_values and obj.on_write is None and obj.initialized
            )
            try:
                if keep:
                    # Last values never overwrite the device's own value; the cloud
                    # cannot write a read-only variable (one without on_write).
                    obj.cloud_value(field, value)
                    continue
                obj.cloud_set(field, value)
            except (TypeError, KeyError) as exc:
                bad += 1
                first_error = first_error or "%s: %s" % (name, exc)
                continue
            if obj not in touched:
                touched.append(obj)
        if unknown:
            self.counters["unknown_records"] += unknown
            _log.warning("%d record(s) on %s name no registered variable", unknown, topic)
        if bad:
            self.counters["bad_messages"] += 1
            self.counters["bad_records"] += bad
            _log.warning("bad message on %s: %d record(s) refused: %s", topic, bad, first_error)
        if last_values:
            self.counters["last_values"] += 1
        else:
            self.counters["writes"] += len(touched)
        for obj in touched:
            if obj.on_write is not None and obj.initialized:
                try:
                    obj.on_write(self, obj if obj._FIELDS else obj.value)
                except Exception as exc:
                    self._callback_failed(obj, exc)


def _default_roots(port, certificate_auth):
    # The roots module holds ~4.6 KB of DER; mbedTLS copies what it needs, so the module
    # is dropped again after use (a .mpy module's constants live in RAM).
    import tether.arduino
    from tether.arduino import roots

    cas = roots.for_port(port, certificate_auth)
    sys.modules.pop("tether.arduino.roots", None)
    try:
        delattr(tether.arduino, "roots")
    except AttributeError:
        pass
    return cas


def _value(rec):
    for k in ("v", "vs", "vb", "vd"):
        if k in rec:
            return rec[k]
    return None


def _text(s):
    return s.decode() if isinstance(s, (bytes, bytearray)) else s


def _name(exc):
    return type(exc).__name__


def _needs_clock_stage():
    # Boards need SNTP before TLS can check certificate dates; an OS keeps its own time.
    return sys.platform not in ("linux", "darwin", "win32", "cygwin")


async def _pause_ms(ms):
    await asyncio.sleep(ms / 1000)
