"""CloudClient: the base every cloud profile is built on (docs/architecture.md, "Cloud base").

A profile subclasses it and writes only its protocol:

    class MyCloud(CloudClient):
        MAX_PACKET = 2048                      # the largest packet this cloud sends
        def tls_context(self):                 # built once, on the first connect
            return None                        # plain TCP (or a tls.SSLContext)
        async def serve(self):                 # once per connection
            await self.subscribe("down/+", self.on_down)
            self.ready()                       # connected and synced
            while await self.wait(lambda: False, 60000) is False:
                pass                           # or push pending values
        async def on_down(self, topic, payload):   # runs outside the MQTT reader
            await self.publish(b"up", payload)     # so it may await

Seams for the firmware and apps: docs/architecture.md ("the profile interface"). It keeps
one tether.session.Session (its monitor runs in the timer task below); ONE MQTTClient, made
at the first connect and reused; credentials minted before every connect and renewed before
they expire (tether.cloud.connect, loaded at the first connect); the topic router and its
handler queue; one timer task for the periodic callbacks (the scheduler is made with the
first) that also ends every wait(): waits take integer ms and a predicate, woken by one
event pulsed on every message, local change and deadline. Sync mode: tether.cloud.sync.
"""

import asyncio
import sys

if __file__.endswith(".py"):
    # From source, the MQTT modules compile first while the heap is emptiest (min heap 234
    # -> ~190 KB). Frozen too: loaded at the first connect, they fragment the heap more.
    import tether.mqtt  # noqa: F401

from tether import log
from tether.compat import MICROPYTHON, print_exception, ticks_add, ticks_diff, ticks_ms, unload

_log = log.getLogger("cloud")

sleep_ms = getattr(asyncio, "sleep_ms", None) or (lambda ms: asyncio.sleep(ms / 1000))

_HOSTED = ("linux", "darwin", "win32", "cygwin")  # an OS keeps the time: no SNTP stage


class CloudClient:
    MAX_PACKET = 4096  # largest MQTT packet accepted; larger ones are drained and counted
    QUEUE = 8  # handler queue bound (tether.cloud.router)
    BACKOFF_MIN_MS = 1000
    BACKOFF_MAX_MS = 32000
    RENEW_MIN_MS = 1000  # never renew credentials more often than this (a clock gone wrong)
    DRAIN_MS = 5000  # a planned renewal waits this long for publishes in flight
    DNS_TIMEOUT_MS = 10000

    def __init__(
        self,
        client_id,
        server,
        port,
        credentials=None,
        keepalive=60,
        sync_mode=False,
        store=None,
        guard=None,
    ):
        # Loaded with the first client: importing a profile (for its types or constants) does
        # not pay for the session or the router (the scheduler: `scheduler` below).
        from tether.cloud.router import Router
        from tether.session import Session

        self.client_id = client_id
        self.server = server
        self.port = port
        self.credentials = credentials  # None: username / _password below (no expiry)
        self.username = None
        self._password = None
        self.keepalive = keepalive
        self.async_mode = not sync_mode
        self.time_synced = False  # the firmware synced the clock: no time stage here
        self.ntp_servers = ("pool.ntp.org",)
        self.ntp_timeout_ms = 3000
        self.counters = {
            "callback_errors": 0,  # app callbacks that raised (logged, still registered)
            "bad_messages": 0,  # cloud messages refused (malformed or not fitting)
            "reconnects": 0,  # connections after the first
        }
        self.router = Router(self.QUEUE)
        self._sched = None
        self.session = Session(
            self._connect,
            self._serve,
            backoff_min_ms=self.BACKOFF_MIN_MS,
            backoff_max_ms=self.BACKOFF_MAX_MS,
            guard=guard,
            monitor_ms=None,  # its monitor runs in this client's timer task (_tick)
        )
        self.session.add_stage("time", self._time_stage, self.ntp_timeout_ms * 3)
        self.session.add_stage("dns", self._resolve, self.DNS_TIMEOUT_MS)
        self.store = store
        # The MQTT receive buffer, allocated now: a few KB in one piece are easy to find in
        # a young heap, hard after a TLS context and a handshake have cut it up.
        self._rxbuf = bytearray(self.MAX_PACKET)
        # Test and emulator hooks: a replacement MQTTClient class, an open_connection.
        self.mqtt_factory = self.open_connection = None
        self.mqtt = None  # the one MQTTClient, made at the first connect
        self._ev = None  # the one wake-up, pulsed
        self._alarm = None  # earliest deadline of a wait()
        self._until = 0  # when the timer task wakes next
        self._timer = self._disp = self._loop = self._renew_at = None
        self._inflight = 0
        self._draining = False

    # -- seams -------------------------------------------------------------------------

    @property
    def guard(self):
        return self.session.guard

    @guard.setter
    def guard(self, g):
        self.session.guard = g

    @property
    def store(self):
        return self.session.store

    @store.setter
    def store(self, st):
        self.session.store = st  # depth and drops join diagnostics

    @property
    def scheduler(self):
        """The periodic callbacks (tether.cloud.scheduler), made when first asked for: a
        client without any does not load the module."""
        s = self._sched
        if s is None:
            from tether.cloud.scheduler import Scheduler

            s = self._sched = Scheduler(self.callback_failed)
        return s

    @property
    def connected(self):
        return self.session.state == "ready"

    def add_stage(self, name, fn, timeout_ms=30000, first=False):
        """An async pre-connect stage (the firmware adds "wifi" with first=True)."""
        self.session.add_stage(name, fn, timeout_ms, first)

    def set_diagnostics(self, interval_ms, callback):
        """Call `await callback(client, dict)` every interval_ms while connected."""
        self.session.diag_interval_ms = interval_ms
        # The session calls on_diagnostics(session, d); the callback gets this client.
        self.session.on_diagnostics = (lambda s, d: callback(self, d)) if callback else None

    def diagnostics(self):
        """The session's state and counters, with this client's counters."""
        d = self.session.diagnostics()
        d["counters"] = self.stats()
        return d

    def stats(self):
        """All counters, plus the session's and the MQTT connection's."""
        out = dict(self.counters)
        s = self.session
        out["state"] = s.state
        out["connect_failures"] = s.failures
        out["renewals"] = s.renewals
        out["queue_overflow"] = self.router.overflow
        m = self.mqtt
        if m is not None and hasattr(m, "stats"):
            for k, v in m.stats.items():
                out["mqtt_" + k] = v
        return out

    def drop(self):
        """Close the connection now (the WiFi link is gone); the session reconnects."""
        conn = self.session.conn
        if conn is not None:
            conn.close()

    # -- profile hooks -----------------------------------------------------------------

    def tls_context(self):
        """The TLS context (None: plain TCP); called once, at the first connect."""
        return None

    def server_hostname(self):
        return self.server

    async def serve(self):
        """Per connection: subscribe, sync, call self.ready(), serve until it ends."""
        raise NotImplementedError

    def begin(self):
        """Called once when run()/start() begins (e.g. restore from the store)."""

    def ready(self):
        self.session.ready()
        self.wake()  # waits on `connected` (or what ready() set up) re-check at once

    # -- lifecycle ---------------------------------------------------------------------

    def start(self):
        """Async mode: run forever. Sync mode: return once connected."""
        if self.async_mode:
            asyncio.run(self.run())
            return
        from tether.cloud.sync import start  # sync mode only

        start(self)

    def update(self):
        """Sync mode: one bounded step (network, due callbacks, pushes); a few ms."""
        if self.async_mode:
            raise RuntimeError("update() is for sync_mode=True; async mode runs by itself")
        from tether.cloud.sync import update

        update(self)

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
        self._until = None  # stopped: no timer will end a wait() (run() starts it again)
        self.wake()  # pending waits end now (False) instead of never

    async def _begin(self):
        old = self._ev
        self._ev = asyncio.Event()  # in this loop (CPython 3.9 binds an Event to one)
        self._until = 0  # running again after a stop()
        if old is not None:
            old.set()  # a wait() from before run() moves over to the new one
        self.begin()
        if self._timer is None:
            self._timer = asyncio.create_task(self._tick())
            self._disp = asyncio.create_task(self.router.run(self.bad_message, self.wake))
        if not self.async_mode:
            asyncio.create_task(self.session.run())

    def _end(self):
        for t in (self._timer, self._disp):
            if t is not None:
                t.cancel()
        self._timer = self._disp = None

    # -- waiting -----------------------------------------------------------------------

    def wake(self):
        """Pulse the wake-up: every wait() re-checks its predicate."""
        ev = self._ev
        if ev is not None:
            ev.set()
            ev.clear()

    async def wait(self, pred, ms):
        """Wait until pred() is true (True) or ms pass (False); RuntimeError after stop()."""
        if self._until is None:  # no timer runs: nothing could end this wait
            raise RuntimeError("the client is stopped: run() it again before wait()")
        deadline = ticks_add(ticks_ms(), ms)
        while not pred():
            if self._until is None or ticks_diff(deadline, ticks_ms()) <= 0:
                return False  # stopped meanwhile, or the deadline passed
            self._arm(deadline)
            if self._ev is None:  # before run(): the timer task ends the wait when it starts
                self._ev = asyncio.Event()
            await self._ev.wait()
        return True

    def _arm(self, t):
        a = self._alarm
        if a is None or ticks_diff(t, a) < 0:
            self._alarm = t
            # The timer task sleeps past the new deadline: start it again (rare: deadlines
            # usually come later than its next wake-up, at most the scheduler's 1 s).
            if self._timer is not None and ticks_diff(t, self._until) < 0:
                self._timer.cancel()
                self._timer = asyncio.create_task(self._tick())

    async def _tick(self):
        # The one timer: scheduled callbacks, wait() deadlines, the credential renewal.
        while True:
            now = ticks_ms()
            s = self._sched
            wait = 1000 if s is None else s.run_due(self, now)  # scheduler.MAX_SLEEP_MS
            a = self._alarm
            if a is not None:
                left = ticks_diff(a, now)
                if left <= 0:
                    self._alarm = None
                    self.wake()
                    await sleep_ms(0)  # the woken re-arm before the next sleep is chosen
                    continue
                wait = min(wait, left)
            ses = self.session
            d = ses.monitor(now)  # while connected (<= 1 s apart): sync deadline, watchdog
            if d is not None:
                asyncio.create_task(d)  # diagnostics are due
            r = self._renew_at
            if r is not None and ses.conn is not None:
                left = ticks_diff(r, now)
                if left <= 0:
                    from tether.cloud.connect import renew

                    self._renew_at = None
                    asyncio.create_task(renew(self))
                else:
                    wait = min(wait, left)
            self._until = ticks_add(now, wait)
            await sleep_ms(wait)

    # -- guards ------------------------------------------------------------------------

    def callback_failed(self, what, exc):
        """An app callback raised: count and log it; the callback stays registered."""
        self.counters["callback_errors"] += 1
        name = getattr(what, "name", what)
        _log.error("%s: callback raised %s: %s (still registered)", name, type(exc).__name__, exc)
        if log.getLevel() <= log.DEBUG:
            print_exception(exc)

    def bad_message(self, topic, exc):
        """A cloud message that does not fit: count and log it; the connection stays."""
        self.counters["bad_messages"] += 1
        _log.warning("bad message on %s: %s: %s", topic, type(exc).__name__, exc)

    # -- MQTT --------------------------------------------------------------------------

    async def publish(self, topic, payload, qos=1):
        """Publish on the current connection; QoS 1 returns after PUBACK (the ack)."""
        if self._draining:  # a planned renewal: this goes out on the next connection
            await self.wait(lambda: not self._draining, self.DRAIN_MS * 2)
        m = self.mqtt
        if m is None:
            raise OSError(11, "not connected")
        self._inflight += 1
        try:
            await m.publish(topic, payload, qos)
        finally:
            self._inflight -= 1
            if self._draining:
                self.wake()

    async def subscribe(self, filt, handler, qos=1, inline=False):
        """Route `filt` (MQTT filter, str or bytes) to handler(topic, payload), subscribe."""
        self.router.add(filt, handler, inline)
        await self.mqtt.subscribe(filt, qos)

    async def unsubscribe(self, filt):
        self.router.remove(filt)
        await self.mqtt.unsubscribe(filt)

    async def _connect(self):
        m = self.mqtt
        if m is None or self.credentials is not None:
            from tether.cloud import connect  # loaded at the first connect

            if m is None:
                m = self.mqtt = connect.make_mqtt(self)
            if self.credentials is not None:
                connect.login(self, m)  # kept: it mints before every connect
            elif MICROPYTHON:
                unload("tether.cloud.connect")  # not needed again (renew() needs expiry)
        if self.credentials is None:
            m.user = self.username
            m.password = self._password
        m.server = self.session.address or self.server
        _log.info("connecting to %s:%d", self.server, self.port)
        await m.connect()
        if self.session.connects >= 1:
            self.counters["reconnects"] += 1
        return m

    async def _serve(self, conn):
        self.router.clear()  # a clean session: the profile subscribes again
        await self.serve()

    async def _resolve(self):
        # The session's cached resolver, after the WiFi stage (getaddrinfo blocks the loop
        # on MicroPython). Test transports resolve nothing.
        if self.mqtt_factory is None and self.open_connection is None:
            s = self.session
            s.address = await s.resolver.resolve(self.server, self.port)

    async def _time_stage(self):
        # Boards need a sane clock before TLS checks certificate dates and before a token
        # is minted; an OS keeps its own time, and the firmware may have synced already.
        c = self.credentials
        if self.time_synced or (sys.platform in _HOSTED and not (c and c.needs_time)):
            return
        from tether.hal import clock

        if not await clock.ensure_time(self.ntp_servers, self.ntp_timeout_ms):
            raise OSError(110, "no sane wall clock (SNTP failed)")
