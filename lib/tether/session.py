"""Connection supervisor: stages -> connect -> sync -> serve -> teardown -> backoff -> again.

    session = Session(connect, serve)
    session.add_stage("wifi", wifi_up, timeout_ms=20000)   # or stages.append(async fn)
    session.add_stage("dns", session.dns_stage(host, link_up=sta.isconnected))
    await session.run()                 # forever, until session.stop()
The chain is WiFi -> time -> DNS -> TCP -> TLS -> MQTT -> cloud sync. Pre-connect stages
are async callables (a plain one in `stages` is named after its function). `connect()`
(TCP, TLS, MQTT) returns a connection with `close()`, `connected`, `async wait_closed()` (an
MQTTClient); a failure there is "tcp", "tls" or "mqtt" (tether.session_diag, loaded then).
`serve(conn)` does the cloud sync, calls `session.ready()`, then serves while connected.
Every stage has a deadline (`timeout_ms` per stage, `connect_timeout_ms`, and
`sync_timeout_ms` from connection to ready()); a stage that misses it or fails tears the
round down (connection closed, serve cancelled), then an exponential backoff with jitter
(1 s doubling to 32 s, each wait drawn from [d/2, d]; reset by a round that was ready).
Every round is a fresh connect and serve(): subscriptions and the sync are redone.
Watchdog (`guard`, a tether.hal.watchdog.Guard): progress is reported when a stage
completes, on connect, on ready, and every `monitor_ms` while connected (monitor()).
State and counters are plain attributes (`state`, `stage`, `attempts`, `connects`,
`failures`, `failures_by_stage`, `last_error`, ...); `diagnostics()` returns them in one
dict, which `on_diagnostics` (async, every `diag_interval_ms` while ready) may publish.
"""

import asyncio
import gc

from tether import log
from tether.compat import const, print_exception, ticks_diff, ticks_ms
from tether.resolver import Resolver  # noqa: F401 (also tether.session.Resolver)

_log = log.getLogger("session")

IDLE = "idle"
STAGES = "stages"  # running pre-connect stages (network, time, dns)
CONNECTING = "connecting"  # tcp, tls, mqtt
SYNCING = "syncing"  # connected, cloud sync in progress
READY = "ready"
BACKOFF = "backoff"
STOPPED = "stopped"

_STAGE_TIMEOUT_MS = const(30000)
_CANCEL_ROUNDS = const(100)


async def _cancel_and_wait(task):
    """Cancel task and wait until it has really ended; False if it would not end. (MicroPython's
    wait_for() loses a cancel that lands as its awaitable finishes: cancel until done.)"""
    for _ in range(_CANCEL_ROUNDS):
        if task.done():
            try:
                await task
            except BaseException:  # CancelledError is a BaseException on CPython
                pass
            return True
        task.cancel()
        await asyncio.sleep(0.001)
    _log.error("a connection task ignored %d cancels", _CANCEL_ROUNDS)
    return False


def _name_of(fn):
    return (getattr(fn, "__name__", None) or "stage").lstrip("_")


def __getattr__(name):
    # connect_stage_of lives in tether.session_diag (loaded when a connect fails).
    if name == "connect_stage_of":
        from tether.session_diag import connect_stage_of

        return connect_stage_of
    raise AttributeError(name)


def heap_free():
    """Free GC heap in bytes on MicroPython; None where the interpreter does not say."""
    return gc.mem_free() if hasattr(gc, "mem_free") else None


class Session:
    _backoff = None  # tether.hal.backoff.Backoff, made at the first backoff

    def __init__(
        self,
        connect,
        serve,
        stages=None,
        backoff_min_ms=1000,
        backoff_max_ms=32000,
        connect_timeout_ms=30000,
        sync_timeout_ms=600000,
        guard=None,
        store=None,
        monitor_ms=1000,
    ):
        self.connect = connect
        self.serve = serve
        # Items: async callables (named after their function) or (name, fn, timeout_ms).
        self.stages = list(stages or ())
        self.backoff_min_ms = backoff_min_ms
        self.backoff_max_ms = backoff_max_ms
        self.connect_timeout_ms = connect_timeout_ms
        self.sync_timeout_ms = sync_timeout_ms
        self.guard = guard
        self.store = store  # a tether.store.Store: its depth and drops join diagnostics
        self.monitor_ms = monitor_ms  # None: the owner's timer calls monitor(), no task here
        self.on_diagnostics = None  # async fn(session, dict), called while ready
        self.diag_interval_ms = 60000
        self.resolver = Resolver()
        self.state = IDLE
        self.stage = None
        self.conn = None
        self.attempts = 0  # connection attempts started
        self.connects = 0  # attempts that reached a connection
        self.reconnects = 0  # connections after the first one
        self.failures = 0  # rounds that ended in an error before "ready"
        self.failures_by_stage = {}  # stage name -> failures there
        self.connection_lost = 0  # rounds that were ready, then lost the connection
        self.last_error = None
        self.last_failed_stage = None
        self.last_ready_ms = None  # ms from the start of the round to ready()
        self.renewals = 0  # planned reconnects (credentials renewed before they expire)
        self.heap_min = None
        self._was_ready = False
        self._answered = False
        self._stop = False
        self._planned = False  # the round ends by renew(): no backoff, not a failure
        self._round_t0 = 0
        self._mon_t = None  # connected at (for the sync deadline); once ready, last diagnostics
        self._wake = None
        self._counted = False
        self._round = None  # the task running run_once()
        self.address = None  # what the dns stage resolved

    # ---- configuration -------------------------------------------------------------

    def add_stage(self, name, fn, timeout_ms=_STAGE_TIMEOUT_MS, first=False):
        """Run `await fn()` before every connect, bounded by timeout_ms (first: before the
        stages added so far, e.g. the firmware's "wifi")."""
        self.stages.insert(0 if first else len(self.stages), (name, fn, timeout_ms))

    def dns_stage(self, host, port=0, link_up=None, on_address=None):
        """A stage resolving `host` (cached) while the link is up (tether.resolver)."""
        from tether.resolver import dns_stage

        return dns_stage(self, host, port, link_up, on_address)

    # ---- called by serve() / the app -----------------------------------------------

    def ready(self):
        """Called by serve() once the cloud sync is done."""
        if not self._was_ready:  # now _mon_t is the last diagnostics (none yet)
            self._mon_t = None
        self.state = READY
        self.stage = None
        self._was_ready = True
        self.last_ready_ms = ticks_diff(ticks_ms(), self._round_t0)
        self.progress("ready")

    def syncing(self):
        """Called by serve() when it goes back to syncing (e.g. the thing was detached)."""
        self.state = SYNCING
        self.stage = "sync"

    def progress(self, what=None, quiet_ms=0):
        """Feed the watchdog guard (if any); `quiet_ms` announces a deliberate wait."""
        if self.guard is not None:
            self.guard.progress(what, quiet_ms)

    def renew(self, close=True):
        """End the connection as planned (fresh credentials): the next round starts at once,
        without backoff, and counts in `renewals`, not as a failure or a lost connection.
        close=False only marks the round: the caller closes it (after a DISCONNECT)."""
        conn = self.conn
        if conn is not None:
            self._planned = True
            if close:
                conn.close()

    def stop(self):
        self._stop = True
        conn = self.conn
        if conn is not None:
            conn.close()
        if self._wake is not None:
            self._wake.set()
        # A stage or connect() in progress may take its whole deadline: cut it short.
        rnd = self._round
        if rnd is not None and self.state in (STAGES, CONNECTING):
            rnd.cancel()

    # ---- the loop ------------------------------------------------------------------

    async def run(self):
        self._stop = False
        while not self._stop:
            self._round = asyncio.create_task(self.run_once())
            try:
                await self._round
            except asyncio.CancelledError:
                if not self._stop:
                    self._round.cancel()
                    raise  # run() itself was cancelled
            except Exception as exc:  # its own error path broke (MemoryError, heap full):
                self.failures += 1  # counted without allocating; back off, try again
                self.last_error = exc
            finally:
                self._round = None
            if self._stop:
                break
            if self._planned:
                self._planned = False  # no backoff: reconnect at once
                continue
            try:
                await self._wait_backoff()
            except MemoryError:  # its lazy import did not fit either: a short wait instead
                await asyncio.sleep(self.backoff_min_ms / 1000)
        self.state = STOPPED
        self.stage = None

    def _fail(self, stage, exc):
        self.failures += 1
        self.failures_by_stage[stage] = self.failures_by_stage.get(stage, 0) + 1
        self.last_failed_stage = stage
        self._failed(stage, exc)

    async def run_once(self):
        """One round: stages, connect, serve until the connection ends, teardown."""
        self._was_ready = False
        self._answered = False  # set when the round ends in an error the network answered
        self.attempts += 1
        self._round_t0 = ticks_ms()
        self._note_heap()
        self.state = STAGES
        for item in list(self.stages):
            if isinstance(item, tuple):
                name, fn, timeout_ms = item
            else:
                name, fn, timeout_ms = _name_of(item), item, _STAGE_TIMEOUT_MS
            self.stage = name
            try:
                await asyncio.wait_for(fn(), timeout_ms / 1000)
            except asyncio.TimeoutError:
                self._fail(name, OSError(110, "stage %s: no result in %d ms" % (name, timeout_ms)))
                return
            except Exception as exc:
                self._answered = True
                self._fail(name, exc)
                return
            self.progress(name)
            if self._stop:
                return
        self.state = CONNECTING
        self.stage = "connect"
        try:
            conn = await asyncio.wait_for(self.connect(), self.connect_timeout_ms / 1000)
        except asyncio.TimeoutError:
            self._fail(
                "tcp", OSError(110, "connect: no result in %d ms" % self.connect_timeout_ms)
            )
            self.resolver.invalidate()
            return
        except Exception as exc:
            from tether.session_diag import connect_stage_of

            self._answered = True
            stage = connect_stage_of(exc)
            if stage == "tcp":
                self.resolver.invalidate()  # the address may have moved
            self._fail(stage, exc)
            return
        if self._stop:  # stop() came while connecting: do not start serving
            conn.close()
            return
        self.conn = conn
        self.connects += 1
        if self.connects > 1:
            self.reconnects += 1
        self.progress("connect")
        self.state = SYNCING
        self.stage = "sync"
        self._counted = False  # the round's failure is counted once
        self._mon_t = ticks_ms()
        task = asyncio.create_task(self._serve(conn))
        mon = None if self.monitor_ms is None else asyncio.create_task(self._monitor())
        try:
            await conn.wait_closed()
        finally:
            conn.close()  # first: a serve loop that outlives its cancel then fails fast
            for t in (task, mon):
                if t is not None:
                    await _cancel_and_wait(t)
            self.conn = None
        if self._planned:
            self.renewals += 1
        elif self._was_ready:
            self.connection_lost += 1
        elif not self._counted:
            why = getattr(conn, "close_reason", None) or "connection closed"
            self._fail("sync", OSError("%s during sync" % why))
        self.stage = None
        self._note_heap()
        _log.info("connection closed")

    async def _serve(self, conn):
        try:
            await self.serve(conn)
        except Exception as exc:
            if not self._was_ready:
                self._fail("sync", exc)
                self._counted = True
            else:
                self._failed("serve", exc)
        finally:
            conn.close()  # serve is over: end the round (wait_closed returns)

    async def _monitor(self):
        while True:
            await asyncio.sleep(self.monitor_ms / 1000)
            d = self.monitor(ticks_ms())
            if d is not None:
                await d  # diagnostics

    def monitor(self, now):
        """Every monitor_ms while connected (own task; monitor_ms None: the owner's timer):
        sync deadline, watchdog progress; returns the diagnostics coroutine when due."""
        conn = self.conn
        if conn is None or self._counted:
            return None
        self._note_heap()
        if not self._was_ready:
            if ticks_diff(now, self._mon_t) > self.sync_timeout_ms:
                self._fail("sync", OSError(110, "sync: not ready in %d ms" % self.sync_timeout_ms))
                self._counted = True
                conn.close()
            return None
        if getattr(conn, "connected", True):
            self.progress("connected")
        last = self._mon_t
        if self.on_diagnostics is not None and self.state == READY:
            if last is None or ticks_diff(now, last) >= self.diag_interval_ms:
                self._mon_t = now
                return self._diagnose(self.on_diagnostics)
        return None

    async def _diagnose(self, cb):
        try:
            await cb(self, self.diagnostics())
        except Exception as exc:
            self._failed("diagnostics", exc)

    def _failed(self, where, exc):
        self.last_error = exc
        _log.warning("%s failed: %s %s", where, type(exc).__name__, exc)
        if log.getLevel() <= log.DEBUG:
            print_exception(exc)

    def _note_heap(self):
        free = heap_free()
        if free is not None and (self.heap_min is None or free < self.heap_min):
            self.heap_min = free

    def next_backoff_ms(self):
        """The next wait: doubles from backoff_min_ms to backoff_max_ms, jittered."""
        b = self._backoff
        if b is None:
            from tether.hal.backoff import Backoff  # a session that never fails never loads it

            b = self._backoff = Backoff()
        if self._was_ready:
            b.reset()
        b.min_ms = self.backoff_min_ms  # plain attributes: tests and profiles set them
        b.max_ms = self.backoff_max_ms
        return b.next_ms()

    async def _wait_backoff(self):
        wait = self.next_backoff_ms()
        self.state = BACKOFF
        # A round that failed with an answer (refused, unreachable, bad TLS) is the chain
        # working: the watchdog guard allows the planned wait on top of its stall limit. A
        # round that ran into a deadline made no progress and announces nothing.
        if self._answered:
            self.progress("backoff", wait)
        _log.info("reconnecting in %d ms", wait)
        self._wake = asyncio.Event()
        try:
            await asyncio.wait_for(self._wake.wait(), wait / 1000)
        except asyncio.TimeoutError:
            pass
        self._wake = None

    # ---- diagnostics ----------------------------------------------------------------

    def diagnostics(self):
        """State and counters in one dict (what on_diagnostics publishes)."""
        from tether.session_diag import diagnostics

        return diagnostics(self)
