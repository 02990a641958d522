"""Topic router and handler queue: the MQTT reader posts, one task runs the handlers.

    router = Router(limit=8)
    router.add(b"/a/t/+/e/i", on_write)        # MQTT filters: + one level, # the rest
    router.add(b"$iothub/methods/POST/#", on_method, inline=False)
    mqtt.on_message = router.post             # MQTTClient(bytes_topics=True)
    await router.run(on_error)                # the dispatcher task

Filters are kept as bytes, made once at add(); an incoming topic (bytes) is looked up in a
dict for exact filters, then matched byte by byte against the wildcard ones: nothing is
built per message. A handler is `fn(topic, payload)`; if it returns a coroutine, the
dispatcher awaits it, so a handler may await a publish or a request.

Handlers run outside the MQTT reader, in arrival order, from a queue of at most `limit`
messages. When it is full, the reader waits for room (the broker's flow control absorbs a
burst) unless the dispatcher is itself waiting inside an async handler: that handler may
need the reader (a PUBACK, a reply), so the message is dropped, counted in `overflow` and
logged instead of deadlocking. `inline=True` handlers (replies matched to a waiter) run in
the reader at once: they only hand a payload over.
"""

import asyncio

from tether import log
from tether.compat import const

_log = log.getLogger("router")

_PLUS = const(43)  # "+"
_HASH = const(35)  # "#"
_SLASH = const(47)  # "/"


def match(filt, topic):
    """True when MQTT filter `filt` (bytes) matches `topic` (bytes); no allocation."""
    i = j = 0
    nf = len(filt)
    nt = len(topic)
    while i < nf:
        c = filt[i]
        if c == _HASH:
            return True  # "a/#" also matches "a" (handled below) and everything under it
        if c == _PLUS:
            while j < nt and topic[j] != _SLASH:
                j += 1
            i += 1
            continue
        if j >= nt:
            # "a/#" matches "a": the rest of the filter is exactly "/#".
            return i + 2 == nf and c == _SLASH and filt[i + 1] == _HASH
        if c != topic[j]:
            return False
        i += 1
        j += 1
    return j == nt


class Router:
    def __init__(self, limit=8):
        self._exact = {}  # topic bytes -> (handler, inline)
        self._wild = []  # [filter bytes, handler, inline]
        self._q = []  # [handler, topic, payload]
        self.limit = limit
        self.overflow = 0  # messages dropped with the queue full (logged)
        self.unrouted = 0  # messages no filter matched
        self.busy = False  # the dispatcher is inside an async handler
        self._ev = None
        self._room = None

    def add(self, filt, handler, inline=False):
        if isinstance(filt, str):
            filt = filt.encode()
        self.remove(filt)
        if _PLUS in filt or _HASH in filt:
            self._wild.append((filt, handler, inline))
        else:
            self._exact[filt] = (handler, inline)
        return filt

    def remove(self, filt):
        if isinstance(filt, str):
            filt = filt.encode()
        self._exact.pop(filt, None)
        for w in self._wild:
            if w[0] == filt:
                self._wild.remove(w)
                return

    def clear(self):
        self._exact = {}
        self._wild = []

    def lookup(self, topic):
        """(handler, inline) for a topic (bytes), or None."""
        h = self._exact.get(topic)
        if h is not None:
            return h
        for w in self._wild:
            if match(w[0], topic):
                return w[1], w[2]
        return None

    def post(self, topic, payload, retain=False, qos=0):
        """MQTT on_message: route; returns a coroutine for the reader to await when full."""
        h = self.lookup(topic)
        if h is None:
            self.unrouted += 1
            _log.debug("no handler for %s", topic)
            return None
        if h[1]:
            h[0](topic, payload)
            return None
        if len(self._q) < self.limit:
            self._q.append((h[0], topic, payload))
            self._wake()
            return None
        if self.busy:
            self.overflow += 1
            _log.warning("handler queue full (%d): message on %s dropped", self.limit, topic)
            return None
        return self._wait_room(h[0], topic, payload)

    async def _wait_room(self, handler, topic, payload):
        while len(self._q) >= self.limit:
            if self._room is None:
                self._room = asyncio.Event()
            self._room.clear()
            await self._room.wait()
        self._q.append((handler, topic, payload))
        self._wake()

    def _wake(self):
        if self._ev is not None:
            self._ev.set()

    async def run(self, on_error, on_done=None):
        """The dispatcher: run queued handlers forever; on_error(topic, exc) for a raise,
        on_done() after each message (the client pulses its wake-up there)."""
        self._ev = ev = asyncio.Event()
        q = self._q
        while True:
            while q:
                h, topic, payload = q.pop(0)
                if self._room is not None:
                    self._room.set()
                try:
                    r = h(topic, payload)
                    if r is not None and hasattr(r, "send"):
                        self.busy = True
                        try:
                            await r
                        finally:
                            self.busy = False
                except Exception as exc:
                    on_error(topic, exc)
                if on_done is not None:
                    on_done()
            # Not kept alive by this frame while it waits: the last message's bytes.
            h = topic = payload = r = None
            ev.clear()
            await ev.wait()
