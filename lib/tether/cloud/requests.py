"""Request/response correlation: a request id -> a waiter, with a timeout and a bound.

    reqs = Requests(client, limit=4)
    rid = reqs.new_id()
    reply = await reqs.call(rid, lambda: client.publish(topic % rid, body, 0), 5000)
    ...
    reqs.resolve(rid, payload)     # from the router (an inline handler), when it matches

A reply is handed over, never handled in the reader. At most `limit` requests are in flight:
more wait for a slot (within their timeout). A timeout raises OSError(ETIMEDOUT) and counts
in `timeouts`; a reply nobody waits for (late, unknown id) counts in `orphans`. Waiting uses
the client's one wake-up (client.wait): no task and no wait_for per request.
"""

from tether.compat import const

_ETIMEDOUT = const(110)


class Requests:
    def __init__(self, client, limit=4):
        self.client = client
        self.limit = limit
        self._w = {}  # rid -> [reply, done]
        self._n = 0
        self.timeouts = 0
        self.orphans = 0

    def new_id(self):
        """A fresh request id (str), unique while the process runs."""
        self._n += 1
        return str(self._n)

    @property
    def in_flight(self):
        return len(self._w)

    async def call(self, rid, send, timeout_ms=10000):
        """await send() (it publishes the request), then the reply for rid; returns it."""
        c = self.client
        w = self._w
        if not await c.wait(lambda: len(w) < self.limit, timeout_ms):
            self.timeouts += 1
            raise OSError(_ETIMEDOUT, "no free request slot")
        slot = [None, False]
        w[rid] = slot
        try:
            await send()
            if not await c.wait(lambda: slot[1], timeout_ms):
                self.timeouts += 1
                raise OSError(_ETIMEDOUT, "no reply to request %s" % rid)
            return slot[0]
        finally:
            if w.get(rid) is slot:
                del w[rid]
            c.wake()  # a slot is free

    def resolve(self, rid, reply):
        """Hand a reply to its waiter; False (counted) when nobody waits for it."""
        slot = self._w.get(rid)
        if slot is None:
            self.orphans += 1
            return False
        slot[0] = reply
        slot[1] = True
        self.client.wake()
        return True
