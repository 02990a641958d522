"""Clock: epoch normalisation, SNTP against a local server, sanity check, resync."""

import asyncio
import socket
import time

from harness import run
from tether.hal import clock
from tether.hal.fakes import FakeClock

NOW = 1795000000  # 2026-11-18, after BUILD_YEAR
Y2K = 946684800


def _bind_udp():
    import random

    for _ in range(50):
        port = 20000 + random.getrandbits(15)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind(socket.getaddrinfo("127.0.0.1", port)[0][-1])
        except OSError:
            s.close()
            continue
        s.setblocking(False)
        return s, port
    raise OSError("no free UDP port")


async def _serve(sock, unix_s, mode=4, stratum=2, echo=True, count=None):
    """A tiny SNTP server: answers each request with unix_s as the transmit time."""
    served = 0
    while count is None or served < count:
        try:
            req, addr = sock.recvfrom(64)
        except OSError:
            await asyncio.sleep(0.005)
            continue
        resp = bytearray(48)
        resp[0] = 0x20 | mode  # version 4
        resp[1] = stratum
        if echo:
            resp[24:32] = req[40:48]
        resp[40:44] = (unix_s + 2208988800).to_bytes(4, "big")
        sock.sendto(resp, addr)
        served += 1


def _with_clock(c, fn):
    clock.set_clock(c)
    try:
        return fn()
    finally:
        clock.set_clock(None)


def test_unix_time_on_a_2000_epoch_clock():
    c = FakeClock(2000, NOW)
    assert abs(c.time() - (NOW - Y2K)) <= 1  # what time.time() says on esp32/stm32
    assert c.gmtime(0)[0] == 2000
    assert abs(_with_clock(c, clock.unix_time) - NOW) <= 1
    assert _with_clock(c, clock.is_sane)


def test_unix_time_on_a_1970_epoch_clock():
    c = FakeClock(1970, NOW)
    assert abs(c.time() - NOW) <= 1
    assert abs(_with_clock(c, clock.unix_time) - NOW) <= 1


def test_port_clock_is_unix_time_here():
    assert abs(clock.unix_time() - int(time.time())) <= 1  # unix port and CPython: 1970
    assert clock.is_sane()


def test_fresh_board_clock_is_not_sane():
    assert not _with_clock(FakeClock(2000), clock.is_sane)
    assert not _with_clock(FakeClock(1970), clock.is_sane)


def test_sntp_sets_a_2000_epoch_clock_to_unix_time():
    c = FakeClock(2000)
    sock, port = _bind_udp()

    async def go():
        server = asyncio.create_task(_serve(sock, NOW))
        ok = await clock.ensure_time(("127.0.0.1",), 1000, port)
        server.cancel()
        return ok

    try:
        ok = _with_clock(c, lambda: run(go(), 10))
    finally:
        sock.close()
    assert ok and c.sets == 1
    assert abs(c.time() - (NOW - Y2K)) <= 1  # stored in the port's epoch
    clock.set_clock(c)
    try:
        assert abs(clock.unix_time() - NOW) <= 1
    finally:
        clock.set_clock(None)


def test_sntp_skips_silent_and_lying_servers():
    c = FakeClock(2000)
    liar, liar_port = _bind_udp()
    good, good_port = _bind_udp()
    silent, silent_port = _bind_udp()  # bound, never answers

    async def go():
        t1 = asyncio.create_task(_serve(liar, 1000000000))  # 2001: before BUILD_YEAR
        t2 = asyncio.create_task(_serve(good, NOW))
        ok = await clock.sync_time(("127.0.0.1",), 300, liar_port, rounds=1)
        assert not ok and c.sets == 0  # a year-2001 answer is refused
        try:
            await clock.sntp_query("127.0.0.1", silent_port, 200)
            raise AssertionError("a silent server must time out")
        except OSError:
            pass
        ok = await clock.sync_time(("127.0.0.1",), 300, good_port, rounds=1)
        t1.cancel()
        t2.cancel()
        return ok

    try:
        ok = _with_clock(c, lambda: run(go(), 10))
    finally:
        for s in (liar, good, silent):
            s.close()
    assert ok and c.sets == 1


def test_sntp_refuses_replies_not_for_our_request():
    sock, port = _bind_udp()

    async def go():
        t = asyncio.create_task(_serve(sock, NOW, echo=False))
        try:
            await clock.sntp_query("127.0.0.1", port, 500)
        except OSError as exc:
            return str(exc)
        finally:
            t.cancel()

    try:
        msg = run(go(), 5)
    finally:
        sock.close()
    assert msg and "not for our request" in msg


def test_sntp_refuses_kiss_of_death():
    sock, port = _bind_udp()

    async def go():
        t = asyncio.create_task(_serve(sock, NOW, stratum=0))
        try:
            await clock.sntp_query("127.0.0.1", port, 500)
        except OSError as exc:
            return str(exc)
        finally:
            t.cancel()

    try:
        msg = run(go(), 5)
    finally:
        sock.close()
    assert msg and "refused" in msg


def test_ensure_time_returns_at_once_when_sane():
    c = FakeClock(2000, NOW)

    async def go():
        # no server anywhere: a query would time out after 3 s per round
        return await clock.ensure_time(("127.0.0.1",), 3000, 9)

    assert _with_clock(c, lambda: run(go(), 1))
    assert c.sets == 0


def test_keep_time_resyncs_periodically():
    c = FakeClock(1970, NOW)
    sock, port = _bind_udp()

    async def go():
        t = asyncio.create_task(_serve(sock, NOW + 100))
        k = asyncio.create_task(clock.keep_time(("127.0.0.1",), 0.05, 500, port))
        await asyncio.sleep(0.4)
        k.cancel()
        t.cancel()

    try:
        _with_clock(c, lambda: run(go(), 5))
    finally:
        sock.close()
    assert c.sets >= 2
    assert abs(c.time() - (NOW + 100)) <= 1
