"""What DeviceMqtt does per connection (tether.astarte.device): the pairing stage, the
resync after CONNACK, the send queue, and the server's messages.

- pairing_stage(d): a certificate known valid and the broker's address. Verify runs on the
  object's first connect and after an attempt that did not connect (the SDK verifies after
  every drop, from paho's thread, and dies there when the pairing API is down); when the
  pairing API cannot be reached on a reconnect, the stored certificate is tried anyway.
- resync(d): SUBSCRIBE QoS 2 consumer/properties and each server-owned interface,
  introspection, emptyCache, every stored device property, producer/properties.
- drain(d) / spill(d): the send queue in order; what a dead connection leaves.
- on_message / on_purge: server values checked, stored (properties), delivered.
"""

import asyncio

from tether import log
from tether.astarte import codec
from tether.astarte.errors import InterfaceNotFoundError, ValidationError
from tether.compat import MICROPYTHON, unload_since

_log = log.getLogger("astarte")


async def pairing_stage(d):
    if not MICROPYTHON:
        return await _pairing(d)
    import sys

    before = list(sys.modules)
    try:
        return await _pairing(d)
    finally:
        # What only pairing needs (HTTP, PEM/DER, keys, CSR) is dropped again: the MQTT
        # connection that follows needs the RAM; a later pairing imports it anew.
        unload_since(before)
        import gc

        gc.collect()


async def _pairing(d):
    from tether.astarte.pairing import APIError

    p = d.pairing
    first = d._stage_connects < 0
    # verify on this object's first connect and after an attempt that did not connect
    verify = first or d._stage_connects == d.session.connects
    d._stage_connects = d.session.connects
    if d.ignore_ssl_errors:
        _log.warning("ignore_ssl_errors: TLS certificates are NOT verified (tests only)")
    old = p.cert_pem
    try:
        await p.ensure_certificate(verify)
        if first or not d.server:
            d.server, d.port = await p.broker()
    except (OSError, APIError) as exc:
        if first or p.cert_pem is None or not d.server:
            raise
        # The pairing API is down but the broker may not be: try with what we have.
        _log.warning("pairing API unreachable (%s): connecting with the stored certificate", exc)
    p.api.release()
    m = d.mqtt
    if m is not None:
        # The base makes its one MQTT client (and TLS context) at the first connect; a new
        # certificate or broker address is put into it here (the base has no seam for it).
        m.port = d.port
        m._server_hostname = d.server
        if p.cert_pem is not old:
            m._ssl = d.tls_context()


async def resync(d):
    b = d._base
    await d.subscribe(b + "/control/consumer/properties", d._on_purge, 2)
    for iface in d.interfaces.values():
        if iface.ownership == "server":
            await d.subscribe("%s/%s/#" % (b, iface.name), d._on_message, 2)
    d.router.add(b + "/#", d._on_message)  # anything else a broker sends: refused
    await d.publish(b.encode(), codec.introspection(d.interfaces.values()).encode(), 2)
    await d.publish((b + "/control/emptyCache").encode(), b"1", 2)
    names = []
    db = d.properties
    for name, major, path, value in db.load_all_props():
        iface = d.interfaces.get(name)
        if iface is None or iface.version_major != major:
            db.delete_prop(name, path)  # a stale value: the interface is gone or changed
        elif iface.ownership == "device":
            m = iface.mapping(path)
            if m is None:
                db.delete_prop(name, path)
                continue
            await d.publish((b + "/" + name + path).encode(), codec.encode(m, value), 2)
            names.append(name + path)
    payload = codec.purge_payload(names)
    await d.publish((b + "/control/producer/properties").encode(), payload, 2)


async def drain(d):
    ob = d._outbox
    if ob is not None and d.store.depth:
        await ob.replay(_boxed(d))  # an earlier boot's
        await ob.flush(_boxed(d))  # this boot's, queued while offline
    # Datastreams go out WINDOW at a time (one acknowledgement round trip no longer bounds
    # the rate); a property waits until everything before it is acknowledged, so property
    # messages keep their order. What is not acknowledged when the connection dies goes
    # back to the head of the queue, in order (at least once).
    q = d._q
    pending = []  # [entry, acknowledged, task], in send order
    try:
        while q or pending:
            while q and len(pending) < d.WINDOW and not (q[0][3] and pending):
                rec = [q.pop(0), False, None]
                rec[2] = asyncio.create_task(_publish(d, rec))
                pending.append(rec)
            await pending[0][2]
            pending.pop(0)
    finally:
        left = []
        for rec in pending:
            if not rec[1]:
                rec[2].cancel()
                left.append(rec[0])
        if left:
            d._q = left + d._q


async def _publish(d, rec):
    e = rec[0]
    await d.publish(e[0], e[1], e[2])
    rec[1] = True
    d.counters["sent"] += 1


def _boxed(d):
    async def send(channel, payload):
        topic = d._base + "/" + bytes(channel[1:]).decode()
        await d.publish(topic.encode(), payload, channel[0] - 48)
        d.counters["sent"] += 1

    return send


def spill(d):
    # The connection is gone: properties go out with the next resync (they are stored),
    # unreliable datastreams are dropped, the others wait (in the outbox with a store).
    keep = []
    ob = d._box()
    for e in d._q:
        if e[3]:
            continue
        if not e[2]:
            d.counters["dropped_unreliable"] += 1
        elif ob is not None:
            suffix = e[0][len(d._base) + 1 :]
            ob.put(("%d" % e[2]).encode() + suffix, e[1])
        else:
            keep.append(e)
    d._q = keep


async def interfaces_changed(d, iface, added):
    b = d._base
    if iface.ownership == "server":
        filt = "%s/%s/#" % (b, iface.name)
        if added:
            await d.subscribe(filt, d._on_message, 2)
        else:
            await d.unsubscribe(filt)
    await d.publish(b.encode(), codec.introspection(d.interfaces.values()).encode(), 2)


# -- incoming ----------------------------------------------------------------------


def on_message(d, topic, payload):
    t = bytes(topic).decode()
    rest = t[len(d._base) + 1 :]
    i = rest.find("/")
    name, path = (rest, "/") if i < 0 else (rest[:i], rest[i:])
    iface = d.interfaces.get(name)
    if iface is None:
        raise InterfaceNotFoundError("message for %s, not in the introspection" % name)
    if iface.ownership != "server":
        raise ValidationError("message for device-owned %s" % name)
    value = codec.decode(iface, path, payload)
    if iface.type == "properties":
        d.properties.store_prop(name, iface.version_major, path, value)
    d.counters["received"] += 1
    d._callback(d._on_data, name, path, value)


def on_purge(d, topic, payload):
    keep = codec.purge_entries(payload)
    db = d.properties
    batch = getattr(db, "batch", None)
    rows = db.load_all_props()
    ctx = batch() if batch is not None else None
    if ctx is not None:
        ctx.__enter__()
    try:
        for name, _major, path, _v in rows:
            iface = d.interfaces.get(name)
            if iface is None:
                db.delete_prop(name, path)
            elif iface.ownership == "server" and name + path not in keep:
                db.delete_prop(name, path)
                d.counters["purged"] += 1
    finally:
        if ctx is not None:
            ctx.__exit__(None, None, None)
