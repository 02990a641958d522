"""DNS with a cache for the session (tether.session): asked only while the link is up.

r = Resolver()
ip = await r.resolve("broker.example", 8883, link_up=sta.isconnected)
r.invalidate()           # after a TCP failure: the next round asks again
"""

import asyncio

from tether.compat import const, ticks_diff, ticks_ms

_DNS_TTL_MS = const(3600000)


class Resolver:
    """DNS with a cache, asked only while the link has an address.

    On MicroPython getaddrinfo blocks the loop (up to the resolver's timeout), so it runs
    once per host per `ttl_ms`, never while the link is down, and not at all for a literal
    IP address. `invalidate()` after a TCP failure makes the next round ask again.
    """

    def __init__(self, ttl_ms=_DNS_TTL_MS, getaddrinfo=None):
        self.ttl_ms = ttl_ms
        self._gai = getaddrinfo
        self._cache = {}  # (host, port) -> (address, ticks_ms when resolved)
        self.lookups = 0

    def cached(self, host, port):
        hit = self._cache.get((host, port))
        if hit is not None and ticks_diff(ticks_ms(), hit[1]) < self.ttl_ms:
            return hit[0]
        return None

    def invalidate(self, host=None, port=None):
        if host is None:
            self._cache = {}
        else:
            self._cache.pop((host, port), None)

    async def resolve(self, host, port, link_up=None):
        if _is_ip(host):
            return host
        hit = self.cached(host, port)
        if hit is not None:
            return hit
        if link_up is not None and not link_up():
            raise OSError(101, "DNS for %s: the link has no address" % host)
        gai = self._gai
        if gai is None:
            import socket

            gai = socket.getaddrinfo
        await asyncio.sleep(0)  # let the loop run what is due before the blocking call
        self.lookups += 1
        info = gai(host, port, 2, 1)  # AF_INET, SOCK_STREAM: boards speak IPv4
        if not info:
            raise OSError(-2, "DNS: no address for %s" % host)
        addr = info[0][-1]
        ip = addr[0] if isinstance(addr, tuple) else _ntoa(addr)
        self._cache[(host, port)] = (ip, ticks_ms())
        return ip


def dns_stage(session, host, port, link_up, on_address):
    """Session.dns_stage: a stage resolving `host` with the session's resolver."""

    async def dns():
        ip = await session.resolver.resolve(host, port, link_up)
        session.address = ip
        if on_address is not None:
            on_address(ip)

    return dns


def _is_ip(host):
    parts = host.split(".")
    if len(parts) == 4:
        for p in parts:
            if not p.isdigit() or int(p) > 255:
                return False
        return True
    return ":" in host  # IPv6 literal


def _ntoa(addr):
    # MicroPython returns a sockaddr as bytes: family(2) port(2) ipv4(4) ...
    b = bytes(addr)
    return "%d.%d.%d.%d" % (b[4], b[5], b[6], b[7])
