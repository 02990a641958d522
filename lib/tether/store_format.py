"""The on-flash format of tether.store: records in segment files, the meta file, a reader.

Directory layout (one directory per queue):

    s00000001 ...   segment files, append-only, numbered in write order (8 hex digits)
    meta            the committed acknowledgement state, replaced atomically:
                    written to meta.tmp, then os.rename()d over meta (atomic on littlefs
                    and POSIX; on FAT the rename needs a remove first, see write_meta)

Record, little endian, CRC32 over everything before it:

    a5 | kind u8 | klen u8 | plen u16 | seq u32 | key | payload | crc32 u32
    e.g. telemetry seq 1, payload b"hi":  a5 01 00 0200 01000000 6869 <crc32, 4 bytes>

Meta, little endian, CRC32 over everything before it:

    "TQM1" | ack_low u32 | next_seq u32 | n u16 | n x acked seq u32 | crc32 u32

Why power loss cannot corrupt what was stored: a segment is only ever appended to, so a
cut leaves at most one torn record at its end; the reader stops there. A record whose CRC
fails is skipped. The meta file is never written in place. File order is sequence order
(only the tail grows).
"""

import binascii
import os
import struct

from tether.compat import const

TELEMETRY = const(1)
STATE = const(2)

_MAGIC = const(0xA5)
_HDR = "<BBBHI"
_HDR_LEN = const(9)
_CRC_LEN = const(4)
RECORD_OVERHEAD = const(13)  # header + CRC: a record is this plus its key and payload
_META_MAGIC = b"TQM1"


def crc(data):
    return binascii.crc32(data) & 0xFFFFFFFF


def encode_record(seq, kind, key, payload):
    """The bytes of one record (public so tests can build and damage records)."""
    head = struct.pack(_HDR, _MAGIC, kind, len(key), len(payload), seq)
    body = head + key + payload
    return body + struct.pack("<I", crc(body))


def size(path):
    return os.stat(path)[6]


def list_segments(path):
    """The segment numbers in the queue directory `path`, oldest first."""
    segs = []
    for name in os.listdir(path):
        if len(name) == 9 and name[0] == "s":
            try:
                segs.append(int(name[1:], 16))
            except ValueError:
                pass
    segs.sort()
    return segs


def read_meta(path):
    """(ack_low, next_seq, acked list) from the queue directory `path`; meta.tmp stands in
    for a meta that a FAT rename removed; (0, 1, []) when neither is intact."""
    for name in ("/meta", "/meta.tmp"):
        try:
            with open(path + name, "rb") as f:
                data = f.read(4096)
        except OSError:
            continue
        if len(data) < 14 or data[:4] != _META_MAGIC:
            continue
        (c,) = struct.unpack("<I", data[-4:])
        if crc(data[:-4]) != c:
            continue
        ack_low, next_seq, n = struct.unpack("<IIH", data[4:14])
        if len(data) != 18 + 4 * n:
            continue
        acked = [struct.unpack("<I", data[14 + 4 * i : 18 + 4 * i])[0] for i in range(n)]
        return ack_low, next_seq, acked
    return 0, 1, []


def write_meta(path, ack_low, next_seq, acked):
    body = _META_MAGIC + struct.pack("<IIH", ack_low, next_seq, len(acked))
    for s in acked:
        body += struct.pack("<I", s)
    body += struct.pack("<I", crc(body))
    tmp = path + "/meta.tmp"
    with open(tmp, "wb") as f:
        f.write(body)
    try:
        os.rename(tmp, path + "/meta")
    except OSError:
        # FAT cannot rename over a file; read_meta reads meta.tmp when meta is missing.
        os.remove(path + "/meta")
        os.rename(tmp, path + "/meta")


def _damage(store, seg, pos, torn):
    # Damage is rare (after a power cut, or a flash fault): its counting and logging load
    # only when it is found.
    from tether.store_diag import note_damage

    note_damage(store, seg, pos, torn)


class Reader:
    """Walks records in file (= sequence) order from a position, one record in RAM.

    next() returns (seg, pos, end, seq, kind, key, payload) or None at the end. Records
    that fail their CRC are skipped when their length is plausible; a segment whose next
    header is unreadable ends there (a torn tail). Always close() it (files are handles):
    `with Reader(store) as r: for rec in r: ...` does.
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
            self.fsize = size(self.store._seg_path(seg))
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
                    _damage(st, self.seg, pos, True)
                self.close()
                continue
            self.f.seek(pos)
            head = self.f.read(_HDR_LEN)
            magic, kind, klen, plen, seq = struct.unpack(_HDR, head)
            end = pos + _HDR_LEN + klen + plen + _CRC_LEN
            if magic != _MAGIC or kind not in (TELEMETRY, STATE) or end > self.fsize:
                _damage(st, self.seg, pos, True)
                self.close()
                continue
            rest = self.f.read(klen + plen + _CRC_LEN)
            (want,) = struct.unpack("<I", rest[-_CRC_LEN:])
            c = binascii.crc32(head)
            c = binascii.crc32(rest[: klen + plen], c) & 0xFFFFFFFF
            if c != want:
                # Skip it if the next record (or the end of file) is where its length says.
                ok_next = end == self.fsize
                if not ok_next:
                    b = self.f.read(1)
                    ok_next = len(b) == 1 and b[0] == _MAGIC
                _damage(st, self.seg, pos, False)
                if not ok_next:
                    _damage(st, self.seg, pos, True)
                    self.close()
                    continue
                self.pos = end
                continue
            self.pos = end
            return (self.seg, pos, end, seq, kind, bytes(rest[:klen]), rest[klen : klen + plen])
