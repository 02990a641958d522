"""The rarely used reporting side of tether.store: damage found on flash, and stats().

Loaded only when a reader meets a torn or corrupt record (after a power cut or a flash
fault) or when someone asks for stats(), so a healthy queue's common path (put, pending,
ack) does not hold this code in RAM.
"""

import os

from tether import log

_log = log.getLogger("store")


def note_damage(store, seg, pos, torn):
    """Count damage at (seg, pos) once, however often a reader walks past it.

    torn: the segment ends there (a cut write or an unreadable header), so it is never
    appended to again; else one record failed its CRC and was skipped."""
    mark = (seg, pos, 0 if torn else 1)
    if mark not in store._noted:
        store._noted.append(mark)
        if torn:
            store.torn += 1
            _log.warning("segment %d cut at byte %d: later records there are ignored", seg, pos)
        else:
            store.corrupt += 1
            _log.warning("record at segment %d byte %d failed its CRC: skipped", seg, pos)
    if torn and seg not in store._bad_segs:
        store._bad_segs.append(seg)


def stats(store):
    disk = 0
    for seg in store._segments:
        try:
            disk += os.stat(store._seg_path(seg))[6]
        except OSError:
            pass
    return {
        "depth": store._depth,
        "dropped": store.dropped,
        "written_bytes": store.written_bytes,
        "corrupt": store.corrupt,
        "torn": store.torn,
        "segments": len(store._segments),
        "disk_bytes": disk,
        "state_bytes": store._state_bytes,
    }
