"""Store-and-forward: a bounded queue on the board's file system that survives a reboot.

Values produced while offline are appended here and delivered in order once connected;
each entry is removed only after the caller acknowledges it (after its PUBACK).

The files (segments of CRC'd records, an atomically replaced meta file) and why a power
cut cannot corrupt them: tether.store_format. A record whose CRC fails is skipped (counted
in `corrupt`); a segment cut by power loss (counted in `torn`) is read up to the cut and
never appended to again.

Liveness: an entry is live until acknowledged. A state entry (kind STATE, with a key) is
also dead once a newer state entry for the same key exists: the newer value replaces it,
so the queue does not grow while a property changes offline. Whole segments are deleted
when nothing live is left in them. RAM use is bounded: one record at a time is read,
plus a small map key -> newest sequence number (at most `max_keys` keys).

When full (every segment in use), the telemetry policy decides (tether.store_full, loaded
only then): DROP_OLDEST drops the oldest telemetry, DROP_NEWEST the new entry, REJECT raises
StoreFull. State is never dropped: a state put that cannot fit raises StoreFull.
"""

import os

from tether.compat import const
from tether.store_format import (  # noqa: F401 (TELEMETRY, STATE, encode_record: public here)
    RECORD_OVERHEAD,
    STATE,
    TELEMETRY,
    Reader,
    encode_record,
    list_segments,
    read_meta,
    size,
    write_meta,
)

DROP_OLDEST = "drop_oldest"
DROP_NEWEST = "drop_newest"
REJECT = "reject"

_MAX_PAYLOAD = const(65535)


class StoreFull(Exception):
    """The queue has no room for this entry under its policy (state is never dropped)."""


class Entry:
    """One queued value: `seq` (acknowledge it with Store.ack), `kind`, `key`, `payload`."""

    def __init__(self, seq, kind, key, payload):
        self.seq = seq
        self.kind = kind
        self.key = key
        self.payload = payload

    def __repr__(self):
        return "Entry(%d, %d, %r, %d bytes)" % (self.seq, self.kind, self.key, len(self.payload))


class Store:
    """A persistent bounded FIFO of (kind, key, payload) entries in directory `path`.

    seg_bytes * max_segments bounds the space on flash (compaction may use one segment
    more for a moment). A record (header + key + payload + CRC) must fit in seg_bytes // 2.
    """

    def __init__(
        self,
        path,
        seg_bytes=4096,
        max_segments=8,
        telemetry_policy=DROP_OLDEST,
        max_keys=64,
    ):
        if telemetry_policy not in (DROP_OLDEST, DROP_NEWEST, REJECT):
            raise ValueError("telemetry_policy: drop_oldest, drop_newest or reject")
        if max_segments < 3:
            raise ValueError("max_segments must be at least 3")
        self.path = path.rstrip("/")
        self.seg_bytes = seg_bytes
        self.max_segments = max_segments
        self.policy = telemetry_policy
        self.max_keys = max_keys
        self.max_record = seg_bytes // 2
        # Live state may use at most this much, so compaction always has room to work.
        self.state_budget = (max_segments - 2) * seg_bytes // 2
        self.dropped = 0  # telemetry entries dropped by the full policy (since open)
        self.written_bytes = 0  # bytes appended since open
        self.corrupt = 0  # records skipped because their CRC failed (since open)
        self.torn = 0  # segments whose end was cut (power loss mid-write)
        self._tail = None  # open append handle of the tail segment
        self._tail_seg = 0
        self._tail_size = 0
        self._bad_segs = []  # segments with a torn end: never appended to again
        self._noted = []  # (seg, pos) of damage already counted
        self._uncommitted = False  # acknowledgements in RAM not yet in meta
        self._open()

    # ---- paths and meta -------------------------------------------------------------

    def _seg_path(self, seg):
        return "%s/s%08x" % (self.path, seg)

    def _commit_meta(self):
        self._uncommitted = False
        write_meta(self.path, self._ack_low, self._next_seq, self._acked)

    # ---- recovery ------------------------------------------------------------------

    def _open(self):
        try:
            os.mkdir(self.path)
        except OSError:
            pass  # exists
        self._ack_low, self._next_seq, self._acked = read_meta(self.path)
        self._segments = list_segments(self.path)
        self._cur = None
        self._latest = {}  # state key -> seq of its newest record
        self._lens = {}  # state key -> length of that record
        last_end = {}
        with Reader(self) as r:
            for seg, pos, end, seq, kind, key, _ in r:
                last_end[seg] = end
                if seq >= self._next_seq:
                    self._next_seq = seq + 1
                if kind == STATE:
                    self._latest[key] = seq
                    self._lens[key] = end - pos
        for key in list(self._latest):
            if self._acked_seq(self._latest[key]):
                self._forget(key)
        if self._next_seq <= self._ack_low:
            self._next_seq = self._ack_low + 1
        self._recount()
        if self._segments:
            seg = self._segments[-1]
            if seg not in self._bad_segs and last_end.get(seg, 0) == size(self._seg_path(seg)):
                self._tail_seg = seg
                self._tail_size = last_end.get(seg, 0)
                self._tail = open(self._seg_path(seg), "ab")
        self._advance()

    def _recount(self):
        """Depth and live state bytes from disk (at open and after compaction)."""
        self._depth = 0
        self._state_bytes = 0
        with Reader(self) as r:
            for _, pos, end, seq, kind, key, _ in r:
                if self._live(seq, kind, key):
                    self._depth += 1
                    if kind == STATE:
                        self._state_bytes += end - pos

    # ---- liveness ------------------------------------------------------------------

    def _acked_seq(self, seq):
        return seq < self._ack_low or seq in self._acked

    def _live(self, seq, kind, key):
        if self._acked_seq(seq):
            return False
        return kind == TELEMETRY or self._latest.get(key) == seq

    def _forget(self, key):
        # The key's newest value was delivered: it no longer counts against max_keys, and
        # every older record of it is dead (no newest seq matches them).
        self._latest.pop(key, None)
        self._lens.pop(key, None)

    def _advance(self):
        """Move ack_low to the first live entry; delete segments wholly before it."""
        first = None
        with Reader(self, *self._cursor()) as r:
            for seg, pos, _, seq, kind, key, _ in r:
                if self._live(seq, kind, key):
                    first = (seg, pos, seq)
                    break
        if first is None:
            self._ack_low = self._next_seq
            keep = self._tail_seg if self._tail is not None else None
        else:
            self._ack_low = first[2]
            keep = first[0]
            self._cur = (first[0], first[1])
        self._acked = [s for s in self._acked if s >= self._ack_low]
        for seg in list(self._segments):
            if keep is None or seg < keep:
                if seg == self._tail_seg and self._tail is not None:
                    continue
                self._delete_segment(seg)
        if first is None:
            self._cur = (self._tail_seg, self._tail_size) if self._tail is not None else (0, 0)

    def _cursor(self):
        cur = self._cur
        if cur is None or cur[0] not in self._segments:
            return (self._segments[0], 0) if self._segments else (0, 0)
        return cur

    def _delete_segment(self, seg):
        try:
            os.remove(self._seg_path(seg))
        except OSError:
            pass
        if seg in self._segments:
            self._segments.remove(seg)

    # ---- writing -------------------------------------------------------------------

    def _new_segment(self):
        if self._tail is not None:
            self._tail.close()
        seg = (self._segments[-1] + 1) if self._segments else 1
        self._tail = open(self._seg_path(seg), "wb")
        self._tail_seg = seg
        self._tail_size = 0
        self._segments.append(seg)

    def _write(self, rec):
        self._tail.write(rec)
        self._tail.flush()
        self._tail_size += len(rec)
        self.written_bytes += len(rec)

    def _room_for(self, n, kind):
        """Make room for an n-byte record; False means drop it (DROP_NEWEST)."""
        if self._tail is not None and self._tail_size + n <= self.seg_bytes:
            return True
        if len(self._segments) < self.max_segments:
            self._new_segment()  # a record fits in an empty segment (max_record)
            return True
        from tether.store_full import make_room

        return make_room(self, n, kind, StoreFull)

    def put(self, kind, payload, key=None):
        """Append an entry; returns its sequence number, or None if it was dropped.

        kind TELEMETRY: key is optional (ignored for replacement). kind STATE: key (str
        or bytes) is required; a newer value for the same key replaces the queued one.
        """
        payload = bytes(payload)
        if kind == STATE:
            if key is None:
                raise ValueError("a state entry needs a key")
        elif kind != TELEMETRY:
            raise ValueError("kind must be TELEMETRY or STATE")
        key = b"" if key is None else (key.encode() if isinstance(key, str) else bytes(key))
        if len(key) > 255 or len(payload) > _MAX_PAYLOAD:
            raise ValueError("key or payload too long")
        n = RECORD_OVERHEAD + len(key) + len(payload)
        if n > self.max_record:
            raise ValueError("record of %d bytes exceeds %d" % (n, self.max_record))
        old = None
        if kind == STATE:
            old = self._latest.get(key)
            old_live = old is not None and not self._acked_seq(old)
            if old is None and len(self._latest) >= self.max_keys:
                raise StoreFull("more than %d state keys" % self.max_keys)
            if self._state_bytes + n > self.state_budget and not old_live:
                raise StoreFull("state needs %d bytes, budget %d" % (n, self.state_budget))
        if not self._room_for(n, kind):
            self.dropped += 1
            return None
        seq = self._next_seq
        self._next_seq += 1
        self._write(encode_record(seq, kind, key, payload))
        self._depth += 1
        if kind == STATE:
            old = self._latest.get(key)  # compaction may have moved it
            old_n = self._lens.get(key, 0)
            self._latest[key] = seq
            self._lens[key] = n
            self._state_bytes += n
            if old is not None and not self._acked_seq(old):
                self._depth -= 1
                self._state_bytes -= old_n
        if self._ack_low == seq:
            self._advance()  # the queue was empty: the cursor now points at this entry
        return seq

    def put_telemetry(self, payload, key=None):
        return self.put(TELEMETRY, payload, key)

    def put_state(self, key, payload):
        return self.put(STATE, payload, key)

    # ---- reading and acknowledging -------------------------------------------------

    def pending(self, limit=None):
        """Iterate the live entries in order. Safe across awaits: no file stays open."""
        seg, pos = self._cursor()
        n = 0
        while limit is None or n < limit:
            r = Reader(self, seg, pos)
            try:
                rec = r.next()
                while rec is not None and not self._live(rec[3], rec[4], rec[5]):
                    rec = r.next()
            finally:
                r.close()
            if rec is None:
                return
            seg, pos = rec[0], rec[2]
            n += 1
            yield Entry(rec[3], rec[4], rec[5], bytes(rec[6]))

    def peek(self):
        """The oldest live entry, or None when the queue is empty."""
        for e in self.pending(1):
            return e
        return None

    def ack(self, seq, commit=True):
        """Entry `seq` was delivered: it is removed for good (also across a reboot).

        commit=False batches: the acknowledgement holds in RAM at once and reaches flash
        with the next commit() (or committing ack); a power cut before that delivers the
        batch again (at least once), one meta-file write per batch instead of per entry."""
        if seq >= self._next_seq or self._acked_seq(seq):
            return False
        rec = None
        r = Reader(self, *self._cursor())
        try:
            while True:
                rec = r.next()
                if rec is None or rec[3] >= seq:
                    break
        finally:
            r.close()
        if rec is not None and rec[3] == seq and self._live(seq, rec[4], rec[5]):
            self._depth -= 1
            if rec[4] == STATE:
                self._state_bytes -= rec[2] - rec[1]
                self._forget(rec[5])
        self._acked.append(seq)
        self._advance()
        if commit:
            self._commit_meta()
        else:
            self._uncommitted = True
        return True

    def commit(self):
        """Write batched acknowledgements (ack(seq, False)) to flash; nothing if none."""
        if self._uncommitted:
            self._commit_meta()

    # ---- counters ------------------------------------------------------------------

    @property
    def depth(self):
        """Number of live (unacknowledged, not replaced) entries."""
        return self._depth

    def __len__(self):
        return self._depth

    def stats(self):
        """Counters and sizes (depth, dropped, written_bytes, corrupt, torn, segments,
        disk_bytes, state_bytes): for diagnostics, so the code loads only when asked."""
        from tether.store_diag import stats

        return stats(self)

    def close(self):
        self.commit()
        if self._tail is not None:
            self._tail.close()
            self._tail = None


def __getattr__(name):
    # The Arduino client's outbox became tether.cloud.outbox.Outbox (entries carry their
    # channel); the old name still builds one, so an app written for it keeps working.
    if name == "StateOutbox":
        from tether.cloud.outbox import Outbox

        return Outbox
    raise AttributeError(name)


async def forward(store, publish):
    """Deliver the queue in order: `await publish(entry)` must return only once the entry
    is acknowledged (an MQTT QoS 1 publish returns after PUBACK); then it is acked here.

    Raises whatever publish raises (the connection died): the entry stays queued and is
    sent again on the next connection, so delivery is at least once, never lost. Returns
    the number of entries delivered once the queue is empty."""
    n = 0
    while True:
        e = store.peek()
        if e is None:
            return n
        await publish(e)
        store.ack(e.seq)
        n += 1
