"""Store-and-forward: a bounded queue on the board's file system that survives a reboot.

Values produced while offline are appended here and delivered in order once connected;
each entry is removed only after the caller acknowledges it (after its PUBACK).

Directory layout (one directory per queue):

    s00000001 ...   segment files, append-only, numbered in write order (8 hex digits)
    meta            the committed acknowledgement state, replaced atomically:
                    written to meta.tmp, then os.rename()d over meta (atomic on littlefs
                    and POSIX; on FAT the rename needs a remove first, see _commit_meta)

Record, little endian, CRC32 over everything before it:

    a5 | kind u8 | klen u8 | plen u16 | seq u32 | key | payload | crc32 u32
    e.g. telemetry seq 1, payload b"hi":  a5 01 00 0200 01000000 6869 <crc32, 4 bytes>

Why power loss cannot corrupt what was stored: a segment is only ever appended to, so a
cut leaves at most one torn record at its end; recovery stops there and new records go
to a new segment. A record whose CRC fails is skipped (counted in `corrupt`). The meta
file is never written in place. File order is sequence order (only the tail grows).

Liveness: an entry is live until acknowledged. A state entry (kind STATE, with a key) is
also dead once a newer state entry for the same key exists: the newer value replaces it,
so the queue does not grow while a property changes offline. Whole segments are deleted
when nothing live is left in them. RAM use is bounded: one record at a time is read,
plus a small map key -> newest sequence number (at most `max_keys` keys).

When full (every segment in use), the telemetry policy decides: DROP_OLDEST compacts the
oldest segment (its live state entries are copied to the tail, its telemetry is dropped
and counted), DROP_NEWEST drops the new telemetry entry, REJECT raises StoreFull. State is
never dropped: a state put that cannot fit raises StoreFull.
"""

import binascii
import os
import struct

from tether import log
from tether.compat import const

TELEMETRY = const(1)
STATE = const(2)

DROP_OLDEST = "drop_oldest"
DROP_NEWEST = "drop_newest"
REJECT = "reject"

_MAGIC = const(0xA5)
_HDR = "<BBBHI"
_HDR_LEN = const(9)
_CRC_LEN = const(4)
_META_MAGIC = b"TQM1"
_MAX_PAYLOAD = const(65535)

_log = log.getLogger("store")


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


def _crc(data):
    return binascii.crc32(data) & 0xFFFFFFFF


def encode_record(seq, kind, key, payload):
    """The bytes of one record (public so tests can build and damage records)."""
    head = struct.pack(_HDR, _MAGIC, kind, len(key), len(payload), seq)
    body = head + key + payload
    return body + struct.pack("<I", _crc(body))


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _size(path):
    return os.stat(path)[6]


class _Reader:
    """Walks records in file (= sequence) order from a position, one record in RAM.

    next() returns (seg, pos, end, seq, kind, key, payload) or None at the end. Records
    that fail their CRC are skipped when their length is plausible; a segment whose next
    header is unreadable ends there (a torn tail). Always close() it (files are handles):
    `with _Reader(store) as r: for rec in r: ...` does.
    """

    def __init__(self, store, seg=0, pos=0):
        self.store = store
        self.segs = [s for s in store._segments if s >= seg]
        self.seg = seg
        self.pos = pos
        self.f = None
        self.fsize = 0

    def close(self):
        if self.f is not None:
            self.f.close()
            self.f = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __iter__(self):
        return self

    def __next__(self):
        rec = self.next()
        if rec is None:
            raise StopIteration
        return rec

    def _open_next(self):
        while self.segs:
            seg = self.segs.pop(0)
            try:
                self.f = open(self.store._seg_path(seg), "rb")
            except OSError:
                continue  # deleted by compaction meanwhile
            self.fsize = _size(self.store._seg_path(seg))
            if seg != self.seg:
                self.pos = 0
            self.seg = seg
            return True
        return False

    def next(self):
        st = self.store
        while True:
            if self.f is None and not self._open_next():
                return None
            pos = self.pos
            if pos + _HDR_LEN + _CRC_LEN > self.fsize:
                if pos != self.fsize:
                    st._note_torn(self.seg, pos)
                self.close()
                continue
            self.f.seek(pos)
            head = self.f.read(_HDR_LEN)
            magic, kind, klen, plen, seq = struct.unpack(_HDR, head)
            end = pos + _HDR_LEN + klen + plen + _CRC_LEN
            if magic != _MAGIC or kind not in (TELEMETRY, STATE) or end > self.fsize:
                st._note_torn(self.seg, pos)
                self.close()
                continue
            rest = self.f.read(klen + plen + _CRC_LEN)
            (crc,) = struct.unpack("<I", rest[-_CRC_LEN:])
            c = binascii.crc32(head)
            c = binascii.crc32(rest[: klen + plen], c) & 0xFFFFFFFF
            if c != crc:
                # Skip it if the next record (or the end of file) is where its length says.
                ok_next = end == self.fsize
                if not ok_next:
                    b = self.f.read(1)
                    ok_next = len(b) == 1 and b[0] == _MAGIC
                st._note_corrupt(self.seg, pos)
                if not ok_next:
                    st._note_torn(self.seg, pos)
                    self.close()
                    continue
                self.pos = end
                continue
            self.pos = end
            return (self.seg, pos, end, seq, kind, bytes(rest[:klen]), rest[klen : klen + plen])


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

    def _list_segments(self):
        segs = []
        for name in os.listdir(self.path):
            if len(name) == 9 and name[0] == "s":
                try:
                    segs.append(int(name[1:], 16))
                except ValueError:
                    pass
        segs.sort()
        return segs

    def _read_meta(self):
        for name in ("/meta", "/meta.tmp"):
            try:
                with open(self.path + name, "rb") as f:
                    data = f.read(4096)
            except OSError:
                continue
            if len(data) < 14 or data[:4] != _META_MAGIC:
                continue
            (crc,) = struct.unpack("<I", data[-4:])
            if _crc(data[:-4]) != crc:
                continue
            ack_low, next_seq, n = struct.unpack("<IIH", data[4:14])
            if len(data) != 18 + 4 * n:
                continue
            acked = [struct.unpack("<I", data[14 + 4 * i : 18 + 4 * i])[0] for i in range(n)]
            return ack_low, next_seq, acked
        return 0, 1, []

    def _commit_meta(self):
        self._uncommitted = False
        body = _META_MAGIC + struct.pack("<IIH", self._ack_low, self._next_seq, len(self._acked))
        for s in self._acked:
            body += struct.pack("<I", s)
        body += struct.pack("<I", _crc(body))
        tmp = self.path + "/meta.tmp"
        with open(tmp, "wb") as f:
            f.write(body)
        try:
            os.rename(tmp, self.path + "/meta")
        except OSError:
            # FAT cannot rename over a file; recovery reads meta.tmp when meta is missing.
            os.remove(self.path + "/meta")
            os.rename(tmp, self.path + "/meta")

    # ---- recovery ------------------------------------------------------------------

    def _note_torn(self, seg, pos):
        if (seg, pos, 0) not in self._noted:
            self._noted.append((seg, pos, 0))
            self.torn += 1
            _log.warning("segment %d cut at byte %d: later records there are ignored", seg, pos)
        if seg not in self._bad_segs:
            self._bad_segs.append(seg)

    def _note_corrupt(self, seg, pos):
        if (seg, pos, 1) not in self._noted:
            self._noted.append((seg, pos, 1))
            self.corrupt += 1
            _log.warning("record at segment %d byte %d failed its CRC: skipped", seg, pos)

    def _open(self):
        try:
            os.mkdir(self.path)
        except OSError:
            pass  # exists
        self._ack_low, self._next_seq, self._acked = self._read_meta()
        self._segments = self._list_segments()
        self._cur = None
        self._latest = {}  # state key -> seq of its newest record
        self._lens = {}  # state key -> length of that record
        last_end = {}
        with _Reader(self) as r:
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
            if seg not in self._bad_segs and last_end.get(seg, 0) == _size(self._seg_path(seg)):
                self._tail_seg = seg
                self._tail_size = last_end.get(seg, 0)
                self._tail = open(self._seg_path(seg), "ab")
        self._advance()

    def _recount(self):
        """Depth and live state bytes from disk (at open and after compaction)."""
        self._depth = 0
        self._state_bytes = 0
        with _Reader(self) as r:
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
        with _Reader(self, *self._cursor()) as r:
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

    def _reclaim(self):
        """Delete the oldest segments while nothing live is left in them; True if one went.

        Only a prefix: a dead segment after a live one stays until it is the oldest, so a
        state key's newer (acknowledged) record is never deleted while an older record of
        the same key survives, which would bring the older value back after a reboot."""
        freed = False
        for seg in list(self._segments):
            if seg == self._tail_seg and self._tail is not None:
                break
            live = False
            with _Reader(self, seg, 0) as r:
                r.segs = [seg]
                for rec in r:
                    if self._live(rec[3], rec[4], rec[5]):
                        live = True
                        break
            if live:
                break
            self._delete_segment(seg)
            freed = True
        return freed

    def _oldest_has_telemetry(self):
        seg = self._segments[0]
        with _Reader(self, seg, 0) as r:
            r.segs = [seg]
            for rec in r:
                if rec[4] == TELEMETRY and self._live(rec[3], rec[4], rec[5]):
                    return True
        return False

    def _compact_oldest(self):
        """Copy the oldest segment's live state to the tail, drop its telemetry, delete it."""
        seg = self._segments[0]
        moved = []
        with _Reader(self, seg, 0) as r:
            r.segs = [seg]
            for _, _, _, seq, kind, key, payload in r:
                if not self._live(seq, kind, key):
                    continue
                if kind == TELEMETRY:
                    self.dropped += 1
                    self._depth -= 1
                else:
                    moved.append((key, bytes(payload)))
        # The copies are written (and flushed) before the original goes: a power cut in
        # between leaves both, and the newer copy wins at recovery.
        for key, payload in moved:
            rec = encode_record(self._next_seq, STATE, key, payload)
            if self._tail is None or self._tail_size + len(rec) > self.seg_bytes:
                self._new_segment()
            self._latest[key] = self._next_seq
            self._lens[key] = len(rec)
            self._next_seq += 1
            self._write(rec)
        self._delete_segment(seg)
        self._advance()

    def _room_for(self, n, kind):
        """Make room for an n-byte record; False means drop it (DROP_NEWEST)."""
        for _ in range(2 * self.max_segments + 2):
            if self._tail is not None and self._tail_size + n <= self.seg_bytes:
                return True
            if len(self._segments) < self.max_segments:
                self._new_segment()
                continue
            if self._reclaim():
                continue
            if self._oldest_has_telemetry():
                if self.policy == REJECT:
                    raise StoreFull("queue full of unacknowledged telemetry (policy reject)")
                if self.policy == DROP_NEWEST:
                    if kind == TELEMETRY:
                        return False
                    raise StoreFull("queue full of telemetry (policy drop_newest): state kept")
            self._compact_oldest()
        raise StoreFull("queue full of state: %d bytes live" % self._state_bytes)

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
        n = _HDR_LEN + len(key) + len(payload) + _CRC_LEN
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
            r = _Reader(self, seg, pos)
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
        r = _Reader(self, *self._cursor())
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
        disk = 0
        for seg in self._segments:
            try:
                disk += _size(self._seg_path(seg))
            except OSError:
                pass
        return {
            "depth": self._depth,
            "dropped": self.dropped,
            "written_bytes": self.written_bytes,
            "corrupt": self.corrupt,
            "torn": self.torn,
            "segments": len(self._segments),
            "disk_bytes": disk,
            "state_bytes": self._state_bytes,
        }

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
