"""Store-and-forward for any cloud: entries on a tether.store.Store, each with its channel.

    box = Outbox(Store("/flash/outbox"))
    box.put(b"o", payload)                     # a message, delivered at least once, in order
    if box.needs("temp", gen): box.save(b"o", "temp", gen, payload)   # a state value
    box.delivered("temp", gen)                 # its acknowledgement came (batched)
    await box.replay(send)                     # what an earlier boot queued: send(ch, payload)
    box.commit()                               # write the batched acknowledgements

The channel is a short name the profile maps to a topic (the Arduino client uses b"o" for
/a/t/{thing}/e/o), so an entry is delivered on the right topic after a reboot even when the
topic holds an id learnt at run time. A state entry's store key is `channel 0x1f key`; a
newer value for the key replaces the queued one; a message's key is `channel 0x1f`.
Entries written by the older StateOutbox (no channel) belong to channel b"o".

Flash is touched only when something is queued: an idle wake-up reads nothing (the scan
for an earlier boot's entries runs until it finds none, then never again), and
acknowledgements are written to the store's meta file once per batch (`commit()`), not
once each. A power cut before a commit delivers that batch again: at least once.
"""

from tether.compat import const

_SEP = const(0x1F)
_DEFAULT = b"o"


def _split(key):
    i = key.find(b"\x1f")
    if i < 0:
        return _DEFAULT, key
    return key[:i], key[i + 1 :]


class Outbox:
    def __init__(self, store):
        self.store = store
        self._mine = {}  # state key -> (gen, seq) saved during this boot
        self._seqs = []  # telemetry seqs put during this boot, not yet delivered
        self._old = True  # an earlier boot's entries may still be queued
        self._dirty = False  # acknowledgements not committed yet

    # -- state values (last value per key) -------------------------------------------------

    def needs(self, key, gen):
        m = self._mine.get(key)
        return m is None or m[0] != gen

    def save(self, channel, key, gen, payload):
        k = channel + b"\x1f" + (key.encode() if isinstance(key, str) else key)
        self._mine[key] = (gen, self.store.put_state(k, payload))

    def delivered(self, key, gen):
        m = self._mine.get(key)
        if m is not None and m[0] <= gen:
            self._ack(m[1])
            del self._mine[key]

    # -- messages --------------------------------------------------------------------------

    def put(self, channel, payload):
        seq = self.store.put_telemetry(payload, channel + b"\x1f")
        if seq is not None:
            self._seqs.append(seq)
        return seq

    async def flush(self, send):
        """Deliver this boot's messages in order: `await send(channel, payload)` must return
        once acknowledged (PUBACK or an application reply). Returns how many went."""
        n = 0
        st = self.store
        try:
            while self._seqs:
                seq = self._seqs[0]
                e = None
                for x in st.pending():
                    if x.seq == seq:
                        e = x
                        break
                if e is not None:
                    await send(_split(e.key)[0], e.payload)
                    self._ack(seq)
                    n += 1
                self._seqs.pop(0)
        finally:
            self.commit()
        return n

    # -- an earlier boot's entries ---------------------------------------------------------

    def leftovers(self):
        """(channel, key, entry) queued by an earlier boot and not replaced since."""
        if not self._old or not self.store.depth:
            return
        mine = [m[1] for m in self._mine.values()]
        found = False
        for e in self.store.pending():
            if e.seq not in mine and e.seq not in self._seqs:
                found = True
                ch, key = _split(e.key)
                yield ch, key, e
        if not found:
            self._old = False

    async def replay(self, send):
        """Publish the leftovers with `await send(channel, payload)`, acknowledging each."""
        n = 0
        try:
            while self._old:
                got = None
                for x in self.leftovers():
                    got = x
                    break
                if got is None:
                    return n
                await send(got[0], got[2].payload)
                self._ack(got[2].seq)
                n += 1
        finally:
            self.commit()
        return n

    # -- acknowledgements ------------------------------------------------------------------

    def _ack(self, seq):
        self.store.ack(seq, False)
        self._dirty = True

    def commit(self):
        """Write the acknowledgements made since the last commit (one meta-file write)."""
        if self._dirty:
            self._dirty = False
            self.store.commit()
