"""What DeviceMqtt does per connection (tether.astarte.device): the pairing stage, the
resync after CONNACK, the send queue, and the server's messages.

- pairing_stage(d): tether.astarte.certificate.stage, whose modules (HTTP, PEM/DER, keys,
  CSR) a board drops again before the connection needs the RAM.
- tls_context(d), CertLife: the MQTT connection's TLS context (native from DER on
  MicroPython, tether.astarte.pem) and the certificate's end for the base's planned
  reconnect.
- after_connack(d): the full resync (SUBSCRIBE QoS 2 consumer/properties and each
  server-owned interface, introspection, emptyCache, every stored device property,
  producer/properties), or, on a persistent session the broker kept (session present) whose
  introspection is the one last synced in full by this object, only the properties changed
  since (their value now, or an unset): the protocol's "no further actions" plus its "publish
  the properties changed while offline". CleanSession 0 is asked for only then: the first
  connect of an object (a boot) and any after an interface change are clean and full.
- drain(d) / spill(d): the send queue in order; what a dead connection leaves.
- on_message / on_purge: server values checked, stored (properties), delivered.
"""

import asyncio

from tether import log
from tether.astarte import codec
from tether.astarte.errors import InterfaceNotFoundError, ValidationError
from tether.compat import MICROPYTHON, build_once, ticks_diff, ticks_ms, unload_since

_log = log.getLogger("astarte")


def choose_clean(d):
    """CleanSession for the next connect (before each): 0 only when a session the broker
    kept would be trusted (the base reads `clean_session` when it makes the MQTT client)."""
    intro = codec.introspection(d.interfaces.values())
    d.clean_session = not (d._persist and d._synced == intro)
    if d.mqtt is not None:
        d.mqtt._clean = d.clean_session


async def pairing_stage(d):
    choose_clean(d)
    if not MICROPYTHON:
        from tether.astarte.certificate import stage

        return await stage(d)
    import sys

    before = list(sys.modules)
    try:
        from tether.astarte.certificate import stage

        return await stage(d)
    finally:
        # What only pairing needs (HTTP, PEM/DER, keys, CSR) is dropped again: the MQTT
        # connection that follows needs the RAM; a later pairing imports it anew.
        d.pairing = None
        unload_since(before)
        import gc

        gc.collect()


def _pem(name, *args):
    # tether.astarte.pem's function `name`, imported when called: on a board the module
    # does not stay (read_ca below; the base builds each TLS context through build_once,
    # and the pairing stage drops what it loaded)
    from tether.astarte import pem

    return getattr(pem, name)(*args)


def read_ca(ca):
    """CA bytes (PEM or DER) from bytes, PEM text or a file path (tether.astarte.pem)."""
    return build_once(_pem, "read_ca", ca)


class CertLife:
    """The base's credentials provider (tether.creds.Credentials), used for its planned
    reconnect only: no user name or password (mutual TLS), and `expires_at` when the
    device certificate runs out. The base reconnects at 4/5 of that; the pairing stage then
    finds the certificate in its last quarter and renews it while the broker still takes
    it."""

    needs_time = False
    expires_at = None

    def __init__(self, device):
        self.d = device
        if device._se_key:  # made with the client: refused before the firmware's watchdog
            _pem("creds", "key " + device._se_key[0])

    def mint(self, now):
        left = self.d._cert_left
        self.expires_at = None
        if left is not None:
            s = left[0] - ticks_diff(ticks_ms(), left[1]) // 1000
            if s > 2:
                self.expires_at = now + s
        return None, None


def tls_context(d):
    """The MQTT connection's context: the CA, the device certificate and its key."""
    if d._se_key:  # the SE05x signs the handshake (boards built with ECDSA_SIGN_ALT)
        key, _, se = d._se_key
        return _pem("creds", key).tls_context(d._ca, d._cert_pem, key, d.ignore_ssl_errors, se)
    if MICROPYTHON and (d._ca or d.ignore_ssl_errors):
        ctx = _pem("native_context", d._ca, d._cert_pem, d._key_pem, d.ignore_ssl_errors)
        if ctx is not None:
            return ctx
    from tether import tlsctx

    return tlsctx.client_context(
        cadata=d._ca,
        cert=d._cert_pem,
        key=d._key_pem,
        insecure=d.ignore_ssl_errors,
    )


def routes(d):
    """The routes of the subscriptions (the base cleared them; a kept session keeps the
    subscriptions): made before anything awaits, so nothing the broker sends is unrouted."""
    b = d._base
    filts = [b + "/control/consumer/properties"]
    d.router.add(filts[0], d._on_purge)
    for iface in d.interfaces.values():
        if iface.ownership == "server":
            filts.append("%s/%s/#" % (b, iface.name))
            d.router.add(filts[-1], d._on_message)
    d.router.add(b + "/#", d._on_message)  # anything else a broker sends: refused
    return filts


async def after_connack(d):
    filts = routes(d)
    intro = codec.introspection(d.interfaces.values())
    if getattr(d.mqtt, "session_present", False) and d._synced == intro:
        d.counters["resumed"] += 1
    else:
        d._synced = None
        await resync(d, filts, intro)
        d._synced = intro
    await send_changed(d)


async def resync(d, filts, intro):
    b = d._base
    for filt in filts:
        await d.mqtt.subscribe(filt, 2)
    await d.publish(b.encode(), intro.encode(), 2)
    await d.publish((b + "/control/emptyCache").encode(), b"1", 2)
    names = []
    db = d.properties
    d._changed = []  # what changes from now on is sent after the snapshot below
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


def changed(d, key):
    """A device property ("iface/path") changed while offline (or its message was not
    acknowledged): kept in the order of the last change, sent by send_changed()."""
    ch = d._changed
    if key in ch:
        ch.remove(key)
    ch.append(key)


async def send_changed(d):
    while d._changed:
        key = d._changed[0]
        i = key.find("/")
        name, path = key[:i], key[i:]
        iface = d.interfaces.get(name)
        m = iface.mapping(path) if iface is not None else None
        if m is not None:
            value = d.properties.load_prop(name, iface.version_major, path)
            payload = b"" if value is None else codec.encode(m, value)
            await d.publish((d._base + "/" + key).encode(), payload, 2)
        if d._changed and d._changed[0] == key:  # not changed again meanwhile
            d._changed.pop(0)


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
    # The connection is gone: properties go out with the next connection (they are stored),
    # unreliable datastreams are dropped, the others wait (in the outbox with a store).
    keep = []
    ob = d._box()
    for e in d._q:
        if e[3]:  # a property: its value now goes out with the next connection
            changed(d, e[0][len(d._base) + 1 :].decode())
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
