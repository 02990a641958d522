"""tether.session on both interpreters: stages with deadlines, failures by stage, backoff
with jitter, resync on every reconnect, the watchdog fed only on progress, DNS cache,
diagnostics, and the loop stall during a reconnect storm (tether.stallmeter)."""

import asyncio

from harness import run
from tether.compat import ticks_diff, ticks_ms
from tether.session import READY, Resolver, Session, connect_stage_of
from tether.stallmeter import StallMeter


class Conn:
    def __init__(self):
        self.connected = True
        self.ev = asyncio.Event()
        self.stats = {"messages_out": 0}

    def close(self):
        self.connected = False
        self.ev.set()

    async def wait_closed(self):
        await self.ev.wait()


class Guard:
    def __init__(self):
        self.seen = []

    def progress(self, what=None, quiet_ms=0):
        self.seen.append(what)
        self.quiet_ms = quiet_ms


async def until(pred, ms):
    t0 = ticks_ms()
    while not pred():
        if ticks_diff(ticks_ms(), t0) > ms:
            return False
        await asyncio.sleep(0.005)
    return True


def fast(session):
    session.backoff_min_ms = 4
    session.backoff_max_ms = 16
    session.monitor_ms = 10
    return session


def test_stages_run_in_order_then_connect_and_serve_until_ready():
    order = []
    conns = []

    async def wifi():
        order.append("wifi")

    async def time_up():
        order.append("time")

    async def connect():
        order.append("connect")
        c = Conn()
        conns.append(c)
        return c

    async def serve(conn):
        order.append("serve")
        s.ready()
        await asyncio.sleep(10)

    guard = Guard()
    s = fast(Session(connect, serve, guard=guard))
    s.add_stage("wifi", wifi, 1000)
    s.stages.append(time_up)  # a plain callable is named after its function

    async def main():
        t = asyncio.create_task(s.run())
        assert await until(lambda: s.state == READY, 2000)
        assert order == ["wifi", "time", "connect", "serve"]
        assert s.connects == 1 and s.failures == 0 and s.attempts == 1
        assert guard.seen[:4] == ["wifi", "time_up", "connect", "ready"], guard.seen
        assert await until(lambda: "connected" in guard.seen, 1000)  # fed while up
        s.stop()
        assert await until(lambda: t.done(), 1000)

    run(main())


def test_a_hung_stage_misses_its_deadline_and_the_round_is_retried():
    calls = []

    async def dns():
        calls.append(ticks_ms())
        if len(calls) == 1:
            await asyncio.sleep(10)  # hangs: the deadline must end it

    async def connect():
        return Conn()

    async def serve(conn):
        s.ready()
        await asyncio.sleep(10)

    guard = Guard()
    s = fast(Session(connect, serve, guard=guard))
    s.add_stage("dns", dns, 50)

    async def main():
        t0 = ticks_ms()
        t = asyncio.create_task(s.run())
        assert await until(lambda: s.state == READY, 2000)
        assert ticks_diff(calls[1], t0) >= 50
        assert s.failures_by_stage == {"dns": 1}, s.failures_by_stage
        assert "no result in 50 ms" in str(s.last_error)
        assert guard.seen[0] == "dns"  # no progress was reported for the hung round
        s.stop()
        await until(lambda: t.done(), 1000)

    run(main())


def test_connect_failures_are_counted_by_stage():
    from tether.mqtt import MQTTConnectError

    errors = [OSError(111, "ECONNREFUSED"), MQTTConnectError(5), OSError(-0x2700, "x")]

    async def connect():
        if errors:
            raise errors.pop(0)
        return Conn()

    async def serve(conn):
        s.ready()
        await asyncio.sleep(10)

    s = fast(Session(connect, serve))

    async def main():
        t = asyncio.create_task(s.run())
        assert await until(lambda: s.state == READY, 3000)
        assert s.failures_by_stage == {"tcp": 1, "mqtt": 1, "tls": 1}, s.failures_by_stage
        assert s.attempts == 4 and s.connects == 1
        s.stop()
        await until(lambda: t.done(), 1000)

    run(main())
    assert connect_stage_of(OSError(110, "timed out")) == "tcp"


def test_backoff_doubles_with_jitter_up_to_the_cap_and_resets_after_ready():
    s = Session(None, None, backoff_min_ms=1000, backoff_max_ms=32000)
    waits = [s.next_backoff_ms() for _ in range(8)]
    caps = [1000, 2000, 4000, 8000, 16000, 32000, 32000, 32000]
    for w, cap in zip(waits, caps):
        assert cap // 2 <= w <= cap, (w, cap)
    assert len(set(s.next_backoff_ms() for _ in range(20))) > 1  # jittered, not fixed
    s._was_ready = True
    assert 500 <= s.next_backoff_ms() <= 1000


def test_every_reconnect_serves_again_so_it_resubscribes_and_resyncs():
    served = []
    conns = []

    async def connect():
        c = Conn()
        conns.append(c)
        return c

    async def serve(conn):
        served.append(conn)  # a real profile subscribes and syncs here
        s.ready()
        await asyncio.sleep(10)

    s = fast(Session(connect, serve))

    async def main():
        t = asyncio.create_task(s.run())
        for n in range(1, 4):
            assert await until(lambda n=n: s.state == READY and len(conns) == n, 2000), n
            conns[-1].close()  # the connection drops
        assert await until(lambda: len(served) == 4, 2000)
        assert served == conns
        assert s.reconnects == 3 and s.connection_lost == 3 and s.failures == 0
        s.stop()
        await until(lambda: t.done(), 1000)

    run(main())


def test_no_ready_within_the_sync_deadline_tears_the_connection_down():
    conns = []

    async def connect():
        c = Conn()
        conns.append(c)
        return c

    async def serve(conn):
        if len(conns) > 1:
            s.ready()
        await asyncio.sleep(10)  # the first round never syncs

    s = fast(Session(connect, serve, sync_timeout_ms=60))

    async def main():
        t = asyncio.create_task(s.run())
        assert await until(lambda: s.state == READY, 2000)
        assert not conns[0].connected
        assert s.failures_by_stage == {"sync": 1}, s.failures_by_stage
        s.stop()
        await until(lambda: t.done(), 1000)

    run(main())


def test_a_serve_error_before_ready_is_a_sync_failure():
    n = []

    async def connect():
        return Conn()

    async def serve(conn):
        n.append(1)
        if len(n) == 1:
            raise ValueError("bad thing id")
        s.ready()
        await asyncio.sleep(10)

    s = fast(Session(connect, serve))

    async def main():
        t = asyncio.create_task(s.run())
        assert await until(lambda: s.state == READY, 2000)
        assert s.failures_by_stage == {"sync": 1}, s.failures_by_stage
        s.stop()
        await until(lambda: t.done(), 1000)

    run(main())


def test_dns_is_cached_skipped_for_ip_literals_and_never_asked_without_a_link():
    asked = []

    def gai(host, port, *args):
        asked.append(host)
        return [(2, 1, 0, "", ("10.1.2.3", port))]

    link = [False]
    r = Resolver(getaddrinfo=gai)

    async def main():
        assert await r.resolve("127.0.0.1", 1883) == "127.0.0.1"
        try:
            await r.resolve("broker.example", 1883, lambda: link[0])
            raise AssertionError("resolved without a link")
        except OSError:
            pass
        assert asked == []
        link[0] = True
        assert await r.resolve("broker.example", 1883, lambda: link[0]) == "10.1.2.3"
        assert await r.resolve("broker.example", 1883, lambda: link[0]) == "10.1.2.3"
        assert asked == ["broker.example"]  # cached
        r.invalidate()
        await r.resolve("broker.example", 1883, lambda: link[0])
        assert len(asked) == 2

    run(main())


def test_diagnostics_carry_counters_queue_and_are_published_while_ready():
    class FakeStore:
        depth = 7
        dropped = 2

    got = []

    async def publish(session, diag):
        got.append(diag)

    async def connect():
        return Conn()

    async def serve(conn):
        s.ready()
        await asyncio.sleep(10)

    s = fast(Session(connect, serve, store=FakeStore()))
    s.on_diagnostics = publish
    s.diag_interval_ms = 20

    async def main():
        t = asyncio.create_task(s.run())
        assert await until(lambda: len(got) >= 2, 2000)
        s.stop()
        await until(lambda: t.done(), 1000)

    run(main())
    d = got[0]
    assert d["state"] == READY and d["connects"] == 1 and d["queue_depth"] == 7
    assert d["dropped"] == 2 and d["failures_by_stage"] == {}
    assert d["mqtt"] == {"messages_out": 0}
    assert "heap_free" in d


def test_a_reconnect_storm_does_not_stall_the_loop():
    async def connect():
        await asyncio.sleep(0.001)
        raise OSError(111, "ECONNREFUSED")

    async def serve(conn):
        pass

    s = Session(connect, serve, backoff_min_ms=1, backoff_max_ms=4)

    async def main():
        m = StallMeter(2).start()
        m.phase("storm")
        t = asyncio.create_task(s.run())
        await asyncio.sleep(0.4)
        s.stop()
        await until(lambda: t.done(), 1000)
        m.stop()
        return m

    m = run(main())
    print("reconnect storm: %d attempts, longest stall %d ms" % (s.attempts, m.longest_ms))
    # stop() may cut the last round short before its failure is counted.
    assert s.attempts > 20 and s.attempts - 1 <= s.failures_by_stage["tcp"] <= s.attempts
    assert m.longest_ms < 250, m.longest_ms  # generous: measures, does not race the CI box


def test_the_watchdog_is_fed_while_connected_and_starves_when_the_chain_hangs():
    from tether.hal.watchdog import FakeWDT
    from tether.hal.watchdog import Guard as WdtGuard

    resets = []
    wdt = FakeWDT(300, on_reset=lambda: resets.append(ticks_ms()))
    guard = WdtGuard(wdt, 300, 600)
    hang = [False]

    async def wifi():
        if hang[0]:
            await asyncio.sleep(10)  # a driver that never returns (deadline 5 s)

    conns = []

    async def connect():
        c = Conn()
        conns.append(c)
        return c

    async def serve(conn):
        s.ready()
        await asyncio.sleep(10)

    s = fast(Session(connect, serve, guard=guard))
    s.add_stage("wifi", wifi, 5000)

    async def main():
        g = asyncio.create_task(guard.run())
        t = asyncio.create_task(s.run())
        await asyncio.sleep(1.5)  # connected and healthy for > 2 stall windows
        assert resets == [] and s.state == READY, (resets, s.state)
        assert wdt.feeds > 5
        hang[0] = True
        conns[-1].close()  # the link drops; the next round hangs in wifi
        assert await until(lambda: resets, 3000), "the watchdog was fed without progress"
        assert s.stage == "wifi"
        s.stop()
        t.cancel()
        g.cancel()

    run(main())


def test_stop_during_a_slow_connect_ends_run_and_closes_that_connection():
    made = []

    async def connect():
        await asyncio.sleep(0.1)
        c = Conn()
        made.append(c)
        return c

    async def serve(conn):
        s.ready()
        await asyncio.sleep(10)

    s = fast(Session(connect, serve))

    async def main():
        t = asyncio.create_task(s.run())
        await asyncio.sleep(0.03)  # inside connect()
        s.stop()
        assert await until(lambda: t.done(), 1000), s.state
        # connect() was cancelled, or its connection closed at once: nothing serves.
        assert all(not c.connected for c in made) and s.connects == 0, made

    run(main())


def test_stop_during_a_hung_stage_returns_at_once():
    async def wifi():
        await asyncio.sleep(10)

    async def connect():
        return Conn()

    async def serve(conn):
        await asyncio.sleep(10)

    s = fast(Session(connect, serve))
    s.add_stage("wifi", wifi, 20000)

    async def main():
        t = asyncio.create_task(s.run())
        await asyncio.sleep(0.05)
        assert s.stage == "wifi"
        t0 = ticks_ms()
        s.stop()
        assert await until(lambda: t.done(), 1000)
        assert ticks_diff(ticks_ms(), t0) < 500 and s.state == "stopped"

    run(main())


def test_backoff_after_an_answered_failure_is_announced_to_the_watchdog():
    # A refused connect is the chain working: the backoff wait that follows is announced as
    # a quiet window; a round that ran into a deadline announces nothing (see above).
    attempts = []

    async def connect():
        attempts.append(1)
        raise OSError(111, "refused")

    async def serve(conn):
        await asyncio.sleep(10)

    guard = Guard()
    s = fast(Session(connect, serve, guard=guard))

    async def main():
        t = asyncio.create_task(s.run())
        assert await until(lambda: len(attempts) >= 2, 2000)
        s.stop()
        await until(lambda: t.done(), 1000)

    run(main())
    assert guard.seen and guard.seen[0] == "backoff", guard.seen
    assert guard.quiet_ms >= 1, guard.quiet_ms


def test_a_serve_task_that_swallows_a_cancel_is_cancelled_again():
    # MicroPython's wait_for() can lose a cancel that lands as its inner awaitable finishes;
    # the session must still end the connection's tasks instead of waiting on them forever.
    from tether.session import _cancel_and_wait

    swallowed = []

    async def stubborn():
        for _ in range(2):
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                swallowed.append(1)  # what the lost cancel looks like from outside

    async def main():
        t = asyncio.create_task(stubborn())
        await asyncio.sleep(0.01)
        t0 = ticks_ms()
        assert await _cancel_and_wait(t)
        return ticks_diff(ticks_ms(), t0)

    ms = run(main(), 5)
    assert len(swallowed) == 2 and ms < 1000, (swallowed, ms)


def _recovers_when(break_once):
    """A session whose first connect is refused and whose handling of that failure breaks
    once (break_once(session) swaps a method for one that raises MemoryError): the loop
    must go on to a second connect and reach READY. Returns (attempts, session)."""
    attempts = []

    async def connect():
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError(111, "refused")
        return Conn()

    async def serve(conn):
        s.ready()
        await asyncio.sleep(10)

    s = fast(Session(connect, serve))
    break_once(s)

    async def main():
        t = asyncio.create_task(s.run())
        assert await until(lambda: s.state == READY, 2000), s.state
        assert not t.done()
        s.stop()
        await asyncio.wait_for(t, 2)

    run(main())
    return len(attempts), s


def _raise_once(s, name, what):
    real = getattr(s, name)

    def broken(*args):
        setattr(s, name, real)
        raise MemoryError("memory allocation failed, allocating %s" % what)

    setattr(s, name, broken)


def test_a_failure_while_handling_a_failure_does_not_end_the_loop():
    # On a full heap a failed connect can fail again in its own handling (the log line, the
    # lazy import of tether.session_diag): that MemoryError must cost one round, not run().
    attempts, s = _recovers_when(lambda s: _raise_once(s, "_failed", "640 bytes"))
    assert attempts == 2
    assert s.failures >= 1 and isinstance(s.last_error, MemoryError)


def test_a_backoff_that_cannot_be_computed_still_waits_and_tries_again():
    # The first failure loads tether.hal.backoff (lazily): on a full heap that import
    # raises MemoryError. The session must wait a moment and try again, not end run().
    attempts, s = _recovers_when(lambda s: _raise_once(s, "next_backoff_ms", "1280 bytes"))
    assert attempts == 2 and s.failures == 1
