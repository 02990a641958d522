"""Connection supervisor: stages -> connect -> serve -> teardown -> backoff -> again.

    session = Session(connect, serve)
    session.stages.append(wifi_up)      # async def wifi_up(): ...  (run before each connect)
    await session.run()                 # forever, until session.stop()

`connect()` returns a connection object with `close()`, `connected` and
`async wait_closed()` (a tether.mqtt.MQTTClient is one); `serve(conn)` does the cloud
sync and then whatever the cloud profile needs while connected. The session ends the round
when the connection dies (it cancels `serve`) or when `serve` returns or raises (it closes
the connection), then waits an exponential backoff with jitter (1 s doubling to 32 s,
each wait drawn from [d/2, d]) before the next round. A round that reached "ready" resets
the backoff, so a healthy link that drops reconnects after about a second.

State and counters are plain attributes the app can read at any time: `state` (IDLE,
STAGES, CONNECTING, SYNCING, READY, BACKOFF or STOPPED), `attempts`, `connects`,
`reconnects`, `failures`, `last_error`.
"""

import asyncio
import random

from tether import log
from tether.compat import print_exception

_log = log.getLogger("session")

IDLE = "idle"
STAGES = "stages"  # running pre-connect stages (network, time)
CONNECTING = "connecting"
SYNCING = "syncing"  # connected, cloud sync in progress
READY = "ready"
BACKOFF = "backoff"
STOPPED = "stopped"


class Session:
    def __init__(self, connect, serve, stages=None, backoff_min_ms=1000, backoff_max_ms=32000):
        self.connect = connect
        self.serve = serve
        self.stages = list(stages or ())
        self.backoff_min_ms = backoff_min_ms
        self.backoff_max_ms = backoff_max_ms
        self.state = IDLE
        self.conn = None
        self.attempts = 0  # connection attempts started
        self.connects = 0  # attempts that reached a connection
        self.reconnects = 0  # connections after the first one
        self.failures = 0  # rounds that ended in an error before "ready"
        self.last_error = None
        self._was_ready = False
        self._stop = False
        self._backoff_ms = 0

    def ready(self):
        """Called by serve() once the cloud sync is done."""
        self.state = READY
        self._was_ready = True

    def syncing(self):
        """Called by serve() when it goes back to syncing (e.g. the thing was detached)."""
        self.state = SYNCING

    def stop(self):
        self._stop = True
        conn = self.conn
        if conn is not None:
            conn.close()

    async def run(self):
        self._stop = False
        while not self._stop:
            await self.run_once()
            if self._stop:
                break
            await self._backoff()
        self.state = STOPPED

    async def run_once(self):
        """One round: stages, connect, serve until the connection ends, teardown."""
        self._was_ready = False
        self.attempts += 1
        try:
            self.state = STAGES
            for stage in self.stages:
                await stage()
            self.state = CONNECTING
            conn = await self.connect()
        except Exception as exc:
            self._failed("connect", exc)
            self.failures += 1
            return
        self.conn = conn
        self.connects += 1
        if self.connects > 1:
            self.reconnects += 1
        self.state = SYNCING
        task = asyncio.create_task(self._serve(conn))
        try:
            await conn.wait_closed()
        finally:
            task.cancel()
            try:
                await task
            except BaseException:  # CancelledError is a BaseException on CPython
                pass
            conn.close()
            self.conn = None
        if not self._was_ready:
            self.failures += 1
        _log.info("connection closed")

    async def _serve(self, conn):
        try:
            await self.serve(conn)
        except Exception as exc:
            self._failed("serve", exc)
        finally:
            conn.close()  # serve is over: end the round (wait_closed returns)

    def _failed(self, where, exc):
        self.last_error = exc
        _log.warning("%s failed: %s %s", where, type(exc).__name__, exc)
        if log.getLevel() <= log.DEBUG:
            print_exception(exc)

    async def _backoff(self):
        if self._was_ready:
            self._backoff_ms = 0
        d = self._backoff_ms * 2 if self._backoff_ms else self.backoff_min_ms
        self._backoff_ms = min(d, self.backoff_max_ms)
        # Jitter: a fleet that lost the broker together must not come back together.
        wait = self._backoff_ms // 2 + random.getrandbits(16) * (self._backoff_ms // 2) // 65536
        self.state = BACKOFF
        _log.info("reconnecting in %d ms", wait)
        await asyncio.sleep(wait / 1000)
