"""What tether.store does when every segment is in use: reclaim, compact, or apply the policy.

Loaded by Store only the first time an append finds the tail segment full and no segment
left to open, so a queue that is delivered while it still has room (the usual case) never
holds this code in RAM.

DROP_OLDEST compacts the oldest segment (its live state entries are copied to the tail,
its telemetry is dropped and counted), DROP_NEWEST drops the new telemetry entry, REJECT
raises StoreFull. State is never dropped: a state put that cannot fit raises StoreFull.

This half never imports tether.store (imports point only downward): the store passes itself
and its StoreFull, and the policies are compared by value ("drop_newest", "reject": the
strings tether.store names; its tests cover each).
"""

from tether.store_format import STATE, TELEMETRY, Reader, encode_record


def make_room(st, n, kind, full):
    """Make room for an n-byte record; False means drop it (DROP_NEWEST).

    `full` is tether.store.StoreFull, raised when the policy refuses the record."""
    for _ in range(2 * st.max_segments + 2):
        if st._tail is not None and st._tail_size + n <= st.seg_bytes:
            return True
        if len(st._segments) < st.max_segments:
            st._new_segment()
            continue
        if _reclaim(st):
            continue
        if _oldest_has_telemetry(st):
            if st.policy == "reject":
                raise full("queue full of unacknowledged telemetry (policy reject)")
            if st.policy == "drop_newest":
                if kind == TELEMETRY:
                    return False
                raise full("queue full of telemetry (policy drop_newest): state kept")
        _compact_oldest(st)
    raise full("queue full of state: %d bytes live" % st._state_bytes)


def _segment(st, seg):
    # A reader over one segment only.
    r = Reader(st, seg, 0)
    r.segs = [seg]
    return r


def _reclaim(st):
    """Delete the oldest segments while nothing live is left in them; True if one went.

    Only a prefix: a dead segment after a live one stays until it is the oldest, so a
    state key's newer (acknowledged) record is never deleted while an older record of
    the same key survives, which would bring the older value back after a reboot."""
    freed = False
    for seg in list(st._segments):
        if seg == st._tail_seg and st._tail is not None:
            break
        live = False
        with _segment(st, seg) as r:
            for rec in r:
                if st._live(rec[3], rec[4], rec[5]):
                    live = True
                    break
        if live:
            break
        st._delete_segment(seg)
        freed = True
    return freed


def _oldest_has_telemetry(st):
    with _segment(st, st._segments[0]) as r:
        for rec in r:
            if rec[4] == TELEMETRY and st._live(rec[3], rec[4], rec[5]):
                return True
    return False


def _compact_oldest(st):
    """Copy the oldest segment's live state to the tail, drop its telemetry, delete it."""
    seg = st._segments[0]
    moved = []
    with _segment(st, seg) as r:
        for _, _, _, seq, kind, key, payload in r:
            if not st._live(seq, kind, key):
                continue
            if kind == TELEMETRY:
                st.dropped += 1
                st._depth -= 1
            else:
                moved.append((key, bytes(payload)))
    # The copies are written (and flushed) before the original goes: a power cut in
    # between leaves both, and the newer copy wins at recovery.
    for key, payload in moved:
        rec = encode_record(st._next_seq, STATE, key, payload)
        if st._tail is None or st._tail_size + len(rec) > st.seg_bytes:
            st._new_segment()
        st._latest[key] = st._next_seq
        st._lens[key] = len(rec)
        st._next_seq += 1
        st._write(rec)
    st._delete_segment(seg)
    st._advance()
