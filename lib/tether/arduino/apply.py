"""Cloud -> device values for the Arduino client: writes and last values (asked for here).

    apply_pack(client, payload, topic, last_values)   # a SenML pack from e/i, shadow/i, c/dw

Writes (e/i) set read-write variables (those with on_write) and call on_write once per
variable after the pack. Last values initialise unset variables and, cloud winning on sync,
set read-write variables with no local change waiting for its acknowledgement (and none
acknowledged since the request: client._lv_acked), calling on_write when the value differs.
Record by record: one that does not fit is refused and counted, the rest still apply.
"""

from tether import log
from tether.arduino import protocol
from tether.arduino.records import Task

_log = log.getLogger("arduino")

_TZ_NAMES = ("tz_offset", "tz_dst_until")


def _value(rec):
    for k in ("v", "vs", "vb", "vd"):
        if k in rec:
            return rec[k]
    return None


def apply_pack(client, payload, topic, last_values):
    # Record by record: a record of the wrong shape is left out and counted, the rest of
    # its pack still applies. Malformed CBOR still refuses the whole pack (raw_pack raises
    # before anything is applied).
    apply(client, protocol.raw_pack(payload), topic, last_values)


def _keeps(client, obj, field, value, last_values):
    """True when the variable keeps its own value instead of the cloud's."""
    if not last_values:
        # The cloud cannot write a read-only variable (one without on_write).
        return obj.on_write is None and obj.initialized
    if obj.cloud_uninitialized(field):
        return False  # last values initialise what the app left unset
    if obj.on_write is None or obj.dirty:
        return True  # read-only, or a local change waiting for its acknowledgement
    if _acked_when_asked(client, obj) != obj._acked:
        return True  # pushed since the request: the reply is older than our value
    return obj.current(field) == value  # cloud wins on sync; unchanged: nothing to do


def apply(client, pack, topic, last_values):
    """Apply a SenML pack from the cloud (protocol.raw_pack): writes (e/i) or last values
    (shadow, c/dw).

    Records that fit are applied even when others in the same pack do not; the pack
    then counts as one bad message and each refused record as a bad record. on_write runs
    once per variable, after the pack. Each map is checked (senml's rules) as it is
    applied, and dropped from `pack` then: a pack is never held twice.
    """
    touched = []
    unknown = bad = 0
    first_error = None
    errors = []  # records senml refused (their first error is the one logged)
    for i in range(len(pack)):
        rec = protocol.take_record(pack, i, errors)
        if rec is None:
            continue
        name = rec.get("n")
        value = _value(rec)
        if type(name) is not str or not name or value is None:
            bad += 1
            first_error = first_error or "record without a name or value"
            continue
        i = name.find(":")
        base = name if i < 0 else name[:i]
        field = None if i < 0 else name[i + 1 :]
        if base in _TZ_NAMES and field is None:
            if type(value) is not int:
                bad += 1
                first_error = first_error or "%s is not an integer" % name
            else:
                setattr(client, base, value)
            continue
        obj = client.records.get(base)
        if obj is None or isinstance(obj, Task):
            unknown += 1
            continue
        try:
            # Values the variable will not take are still checked, so junk is counted.
            value = obj.cloud_value(field, value)
            if _keeps(client, obj, field, value, last_values):
                continue
            obj.cloud_set(field, value)
        except (TypeError, KeyError) as exc:
            bad += 1
            first_error = first_error or "%s: %s" % (name, exc)
            continue
        if obj not in touched:
            touched.append(obj)
    if errors:
        bad += len(errors)
        first_error = str(errors[0])
    c = client.counters
    if unknown:
        c["unknown_records"] += unknown
        _log.warning("%d record(s) on %s name no registered variable", unknown, topic)
    if bad:
        c["bad_messages"] += 1
        c["bad_records"] += bad
        _log.warning("bad message on %s: %d record(s) refused: %s", topic, bad, first_error)
    if last_values:
        c["last_values"] += 1
    else:
        c["writes"] += len(touched)
    for obj in touched:
        if obj.on_write is not None and obj.initialized:
            try:
                obj.on_write(client, obj if obj._FIELDS else obj.value)
            except Exception as exc:
                client.callback_failed(obj, exc)


def needs_last_values(client):
    """True while a variable is still unset (last values are asked for again then)."""
    for obj in client.records.values():
        if not obj.initialized:
            return True
    return False


def request_last_values(client, thing):
    """Ask for the thing's last values (LastValuesBegin, or getLastValues in the legacy
    flow), noting what each variable had acknowledged: a reply value for one pushed (and
    acknowledged) since then is older than the device's own. Returns the publish to await
    (a plain function: no frame of its own while the request waits for its PUBACK)."""
    recs = client.records
    snap = [None] * len(recs)  # in the records' order: no dict at the connect's peak
    i = 0
    for obj in recs.values():
        snap[i] = obj._acked
        i += 1
    client._lv_acked = snap
    if client._flow == "legacy":
        return client.publish("/a/t/" + thing + "/shadow/o", protocol.get_last_values(), 1)
    return client._command(protocol.last_values_begin())


def _acked_when_asked(client, obj):
    # The variable's acknowledged generation when last values were asked for (None: not
    # known, e.g. a variable registered since).
    snap = client._lv_acked
    recs = client.records
    if snap is None or len(snap) != len(recs):
        return None
    i = 0
    for o in recs.values():
        if o is obj:
            return snap[i]
        i += 1
    return None
