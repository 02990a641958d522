"""Wall-clock time: one epoch for everything, set by SNTP, kept by periodic resync.

Ports disagree on the epoch: esp32 and stm32 count `time.time()` from 2000-01-01, rp2 and
unix from 1970-01-01. Tokens, SenML timestamps and schedules need Unix time, so every
caller uses `unix_time()`, never `time.time()`.

A clock is "sane" once it is not before BUILD_YEAR (a board without a battery wakes up in
2000 or 1970; an SNTP reply from before the firmware was built is a lie or a bug).
SNTP runs over a non-blocking UDP socket polled from the event loop, so a slow server
never stalls the loop; only the DNS lookup blocks (MicroPython has no async getaddrinfo).
"""

import asyncio
import time

from tether import log
from tether.compat import const, ticks_diff, ticks_ms

BUILD_YEAR = const(2026)  # bump with each release: the earliest year a sane clock can show
_Y2K = const(946684800)  # 2000-01-01T00:00:00Z in Unix seconds
_NTP_DELTA = const(2208988800)  # 1900 -> 1970
_NTP_PORT = const(123)
_POLL_MS = const(20)

DEFAULT_SERVERS = ("pool.ntp.org", "time.google.com", "time.cloudflare.com")

_log = log.getLogger("clock")


class PortClock:
    """The running port's RTC: `time.time()` in the port's epoch, set via machine.RTC."""

    def __init__(self):
        self.offset = _Y2K if time.gmtime(0)[0] == 2000 else 0
        self.sets = 0

    def time(self):
        return int(time.time())

    def gmtime(self, secs=None):
        return time.gmtime(self.time() if secs is None else secs)

    def set_unix(self, unix_s):
        try:
            from machine import RTC
        except ImportError:
            # The unix port (and CPython) run on the host's clock, which the host keeps.
            _log.debug("no RTC on this port; the host keeps time")
            return
        tm = time.gmtime(int(unix_s) - self.offset)
        # RTC tuple order: year, month, day, weekday, hours, minutes, seconds, subseconds
        RTC().datetime((tm[0], tm[1], tm[2], tm[6], tm[3], tm[4], tm[5], 0))
        self.sets += 1


_clock = None


def get_clock():
    global _clock
    if _clock is None:
        _clock = PortClock()
    return _clock


def set_clock(clock):
    """Install another clock (tests, the unix port's FakeClock); None restores the port's."""
    global _clock
    _clock = clock


def unix_time():
    """Seconds since 1970-01-01 UTC on every port."""
    c = get_clock()
    return c.time() + c.offset


def year_of(unix_s):
    c = get_clock()
    return c.gmtime(int(unix_s) - c.offset)[0]


def is_sane():
    return year_of(unix_time()) >= BUILD_YEAR


def _socket():
    import socket

    return socket


async def sntp_query(server, port=_NTP_PORT, timeout_ms=3000):
    """One SNTP request; returns Unix seconds or raises OSError."""
    import os

    socket = _socket()
    addr = socket.getaddrinfo(server, port, 0, socket.SOCK_DGRAM)[0][-1]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.setblocking(False)
        req = bytearray(48)
        req[0] = 0x1B  # LI 0, version 3, mode 3 (client)
        nonce = os.urandom(8)
        req[40:48] = nonce  # echoed back as the originate timestamp: proves the reply is ours
        s.sendto(req, addr)
        t0 = ticks_ms()
        while True:
            try:
                data = s.recv(64)
                break
            except OSError:  # EAGAIN (MicroPython) / BlockingIOError (CPython)
                pass
            if ticks_diff(ticks_ms(), t0) >= timeout_ms:
                raise OSError(110, "sntp: no reply from %s" % server)
            await asyncio.sleep(_POLL_MS / 1000)
    finally:
        s.close()
    return _parse_reply(data, nonce, server)


def _parse_reply(data, nonce, server):
    if len(data) < 48:
        raise OSError(5, "sntp: short reply from %s" % server)
    if data[0] & 7 not in (4, 5) or data[1] == 0:
        raise OSError(5, "sntp: %s refused (mode %d, stratum %d)" % (server, data[0] & 7, data[1]))
    if bytes(data[24:32]) != bytes(nonce):
        raise OSError(5, "sntp: reply from %s is not for our request" % server)
    secs = int.from_bytes(data[40:44], "big")
    if secs < 0x80000000:
        secs += 0x100000000  # NTP era 1 starts in 2036; a high bit clear means we are past it
    return secs - _NTP_DELTA


async def sync_time(servers=DEFAULT_SERVERS, timeout_ms=3000, port=_NTP_PORT, rounds=3):
    """Ask the servers in turn (up to `rounds` passes) and set the clock; True on success.
    Between passes the one backoff (tether.hal.backoff): 1 s doubling, jittered."""
    from tether.hal.backoff import Backoff

    backoff = Backoff()
    for r in range(rounds):
        for server in servers:
            try:
                t = await sntp_query(server, port, timeout_ms)
            except OSError as exc:
                _log.warning("%s: %s", server, exc)
                continue
            if year_of(t) < BUILD_YEAR:
                _log.warning("%s says year %d, before %d: ignored", server, year_of(t), BUILD_YEAR)
                continue
            before = unix_time()
            get_clock().set_unix(t)
            _log.info("set from %s (step %d s)", server, t - before)
            return True
        if r + 1 < rounds:
            await asyncio.sleep(backoff.next_ms() / 1000)
    return False


async def ensure_time(servers=DEFAULT_SERVERS, timeout_ms=3000, port=_NTP_PORT, rounds=3):
    """SNTP with retries when the clock is not yet sane; returns at once when it is."""
    if is_sane():
        return True
    return await sync_time(servers, timeout_ms, port, rounds)


async def keep_time(servers=DEFAULT_SERVERS, resync_s=3600, timeout_ms=3000, port=_NTP_PORT):
    """Resync every `resync_s` seconds forever (RTC crystals drift seconds a day)."""
    while True:
        await asyncio.sleep(resync_s)
        await sync_time(servers, timeout_ms, port)
