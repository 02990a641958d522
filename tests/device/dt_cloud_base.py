"""The cloud base's parts on both interpreters: MQTT filters, the router and its handler
queue, waits and deadlines, request/response correlation, the outbox with channels."""

import asyncio

from dt_store import _payloads, _rmtree, _tmpdir
from harness import run
from tether.cloud.client import CloudClient
from tether.cloud.outbox import Outbox
from tether.cloud.requests import Requests
from tether.cloud.router import Router, match
from tether.compat import ticks_diff, ticks_ms
from tether.store import Store


def test_filters_match_as_mqtt_says():
    cases = [
        (b"a/b/c", b"a/b/c", True),
        (b"a/b/c", b"a/b", False),
        (b"a/+/c", b"a/x/c", True),
        (b"a/+/c", b"a//c", True),
        (b"a/+/c", b"a/x/y/c", False),
        (b"a/+", b"a", False),
        (b"a/+", b"a/b/c", False),
        (b"a/#", b"a", True),
        (b"a/#", b"a/b/c", True),
        (b"a/#", b"ab", False),
        (b"#", b"anything/at/all", True),
        (b"+/#", b"a", True),
        (b"$iothub/twin/res/+/#", b"$iothub/twin/res/200/?$rid=4", True),
        (b"$iothub/twin/res/+/#", b"$iothub/twin/PATCH/x", False),
    ]
    for filt, topic, want in cases:
        assert match(filt, topic) is want, (filt, topic, want)


def test_router_prefers_exact_topics_and_forgets_removed_filters():
    r = Router()
    r.add("a/b", "exact")
    r.add(b"a/+", "wild")
    assert r.lookup(b"a/b")[0] == "exact"
    assert r.lookup(b"a/c")[0] == "wild"
    r.remove("a/b")
    assert r.lookup(b"a/b")[0] == "wild"
    r.clear()
    assert r.lookup(b"a/c") is None
    assert r.post(b"a/c", b"x") is None and r.unrouted == 1


def test_handler_queue_holds_the_reader_when_full_and_drops_only_under_an_awaiting_handler():
    r = Router(limit=2)
    got = []

    def sync_handler(topic, payload):
        got.append(payload)

    r.add(b"t", sync_handler)
    errors = []

    async def body():
        assert r.post(b"t", b"1") is None and r.post(b"t", b"2") is None
        held = r.post(b"t", b"3")  # full: the reader is asked to wait, nothing dropped
        assert held is not None and r.overflow == 0
        disp = asyncio.create_task(r.run(lambda t, e: errors.append(e)))
        await held  # room once the dispatcher ran
        for _ in range(10):
            await asyncio.sleep(0)
        assert got == [b"1", b"2", b"3"]
        # A handler that awaits (it may need the reader): full means drop and count.
        r.busy = True
        r.post(b"t", b"4")
        r.post(b"t", b"5")
        assert r.post(b"t", b"6") is None and r.overflow == 1
        r.busy = False
        for _ in range(10):
            await asyncio.sleep(0)
        disp.cancel()

    run(body())
    assert got == [b"1", b"2", b"3", b"4", b"5"] and errors == []


def test_an_async_handler_may_await_and_a_raising_one_is_reported():
    r = Router()
    seen = []
    errors = []

    async def slow(topic, payload):
        await asyncio.sleep(0.01)
        seen.append(payload)

    def bad(topic, payload):
        raise ValueError("boom")

    r.add(b"s", slow)
    r.add(b"b", bad)

    async def body():
        disp = asyncio.create_task(r.run(lambda t, e: errors.append((t, str(e)))))
        r.post(b"s", b"1")
        r.post(b"b", b"2")
        r.post(b"s", b"3")
        for _ in range(100):
            if len(seen) == 2:
                break
            await asyncio.sleep(0.005)
        disp.cancel()

    run(body())
    assert seen == [b"1", b"3"] and errors == [(b"b", "boom")]


class _Idle(CloudClient):
    async def serve(self):
        pass


async def _started():
    c = _Idle("c", "h", 1)
    await c._begin()
    return c


def test_waits_end_at_their_own_deadlines_with_one_timer():
    async def body():
        c = await _started()
        done = []

        async def w(ms):
            t0 = ticks_ms()
            ok = await c.wait(lambda: False, ms)
            done.append((ms, ok, ticks_diff(ticks_ms(), t0)))

        tasks = [asyncio.create_task(w(ms)) for ms in (120, 40, 10)]
        for t in tasks:
            await t
        flag = []
        asyncio.create_task(_later(flag, c))
        t0 = ticks_ms()
        ok = await c.wait(lambda: flag, 2000)
        woke = ticks_diff(ticks_ms(), t0)
        c._end()
        return done, ok, woke

    async def _later(flag, c):
        await asyncio.sleep(0.02)
        flag.append(1)
        c.wake()

    done, ok, woke = run(body())
    assert [d[0] for d in done] == [10, 40, 120], done  # each at its own deadline, in order
    for ms, ok_, took in done:
        assert not ok_ and ms <= took < ms + 250, done
    assert ok and woke < 500, woke  # a wake() ends the wait at once, not at the deadline


def test_a_wait_from_before_run_moves_to_the_running_client():
    # A profile may wait (e.g. for `connected`) before the task running run() has started:
    # the wait parks on an early event and is woken by the client once it runs.
    async def body():
        c = _Idle("c", "h", 1)
        flag = []
        t0 = ticks_ms()
        w = asyncio.create_task(c.wait(lambda: flag, 3000))
        await asyncio.sleep(0.01)  # parked, nothing running yet
        await c._begin()
        flag.append(1)
        c.wake()
        ok = await w
        took = ticks_diff(ticks_ms(), t0)
        short = await c.wait(lambda: False, 30)  # and its own deadline still ends a wait
        c._end()
        return ok, took, short

    ok, took, short = run(body())
    assert ok is True and took < 1000, (ok, took)
    assert short is False


def test_requests_correlate_replies_time_out_and_bound_the_number_in_flight():
    async def body():
        c = await _started()
        reqs = Requests(c, limit=2)
        sent = []

        def sender(rid):
            async def send():
                sent.append(rid)

            return send

        a, b = reqs.new_id(), reqs.new_id()
        ta = asyncio.create_task(reqs.call(a, sender(a), 2000))
        tb = asyncio.create_task(reqs.call(b, sender(b), 2000))
        await asyncio.sleep(0.01)
        t3 = asyncio.create_task(reqs.call("3", sender("3"), 2000))
        await asyncio.sleep(0.01)
        assert sent == [a, b] and reqs.in_flight == 2  # the third waits for a slot
        assert reqs.resolve(b, b"reply-b") and await tb == b"reply-b"
        await asyncio.sleep(0.01)
        assert sent == [a, b, "3"]
        assert reqs.resolve("3", b"r3") and await t3 == b"r3"
        assert not reqs.resolve("nobody", b"x") and reqs.orphans == 1
        try:
            await reqs.call("late", sender("late"), 30)
            raise AssertionError("no timeout")
        except OSError as exc:
            assert exc.args[0] == 110
        assert reqs.timeouts == 1
        reqs.resolve(a, b"reply-a")
        assert await ta == b"reply-a" and reqs.in_flight == 0
        c._end()

    run(body())


def test_outbox_entries_carry_their_channel_across_a_reboot():
    d = _tmpdir()
    try:
        box = Outbox(Store(d))
        box.put(b"tele", b"m0")
        sent = []

        async def send(channel, payload):
            sent.append((channel, payload))

        assert run(box.flush(send)) == 1 and sent == [(b"tele", b"m0")]
        del sent[:]
        box.put(b"tele", b"m1")
        box.save(b"o", "temp", 1, b"t1")
        box.store.close()
        box = Outbox(Store(d))  # reboot
        got = [(ch, key, e.payload) for ch, key, e in box.leftovers()]
        assert got == [(b"tele", b"", b"m1"), (b"o", b"temp", b"t1")], got
        assert run(box.replay(send)) == 2
        assert sent == [(b"tele", b"m1"), (b"o", b"t1")]
        assert box.store.depth == 0
        box.store.close()
    finally:
        _rmtree(d)


def test_outbox_commits_acknowledgements_in_batches_and_an_idle_wake_reads_no_flash():
    d = _tmpdir()
    try:
        st = Store(d)
        writes = [0]
        real_commit = st._commit_meta

        def counting_commit():
            writes[0] += 1
            real_commit()

        st._commit_meta = counting_commit
        box = Outbox(st)
        for i in range(5):
            box.save(b"o", "v%d" % i, 1, b"x%d" % i)
        for i in range(5):
            box.delivered("v%d" % i, 1)
        assert writes[0] == 0  # acknowledged in RAM, not yet on flash
        box.commit()
        assert writes[0] == 1 and st.depth == 0
        box.commit()
        assert writes[0] == 1  # nothing new: no write
        reads = [0]
        real_pending = st.pending

        def counting_pending(limit=None):
            reads[0] += 1
            return real_pending(limit)

        st.pending = counting_pending

        async def send(channel, payload):
            raise AssertionError("nothing to send")

        for _ in range(3):
            run(box.replay(send))
        assert reads[0] == 0  # empty queue: no segment opened
        box.save(b"o", "v0", 2, b"y")  # this boot's value is not a leftover
        for _ in range(3):
            run(box.replay(send))
        assert reads[0] == 1  # one scan finds no leftovers; later wakes read nothing
        assert _payloads(st) == [b"y"]
        st.close()
    finally:
        _rmtree(d)


def test_a_wait_after_stop_is_refused_and_a_pending_one_ends_at_the_stop():
    # After stop() no timer runs: a wait() would never end, so it is refused; one already
    # waiting ends (False) at the stop instead of at a deadline nobody watches; run() again
    # makes waits work again. ready() wakes waits at once.
    async def body():
        c = await _started()
        pending = asyncio.create_task(c.wait(lambda: False, 60000))
        await asyncio.sleep(0.01)
        t0 = ticks_ms()
        c.stop()
        ended = await pending
        took = ticks_diff(ticks_ms(), t0)
        try:
            await c.wait(lambda: True, 10)
            refused = None
        except RuntimeError as exc:
            refused = str(exc)
        await c._begin()
        again = await c.wait(lambda: False, 20)
        flag = []
        w = asyncio.create_task(c.wait(lambda: flag, 60000))
        await asyncio.sleep(0.01)
        flag.append(1)
        c.session.ready = lambda: None  # no connection here: only the wake-up is under test
        c.ready()
        t1 = ticks_ms()
        woke = await w
        woke_ms = ticks_diff(ticks_ms(), t1)
        c._end()
        return ended, took, refused, again, woke, woke_ms

    ended, took, refused, again, woke, woke_ms = run(body())
    assert ended is False and took < 500, (ended, took)
    assert refused and "stopped" in refused, refused
    assert again is False  # after run() again, its own deadline ends a wait
    assert woke is True and woke_ms < 500, woke_ms
