"""What the cloud base needs from the first connect on, loaded then (tether.cloud.client):
the one MQTT client, credentials minted per connect, the planned renewal.

- make_mqtt(client): CleanSession from the client's `clean_session` attribute (default
  True; a profile may change `client.mqtt._clean` between connects, and reads
  `client.mqtt.session_present` after each). The TLS context is built once (profile hook
  tls_context()); on MicroPython the tether modules that building it imported are dropped
  again before the handshake needs the RAM, and a verifying tlsctx context is unwrapped
  into tether.cloud.tls._NoDelay (the wrapper would keep all of tlsctx alive for one method).
  A client without a credentials provider needs nothing here after that: on MicroPython
  the base drops this module again after the first connect.
- login(client, m): `credentials.mint(now)` before every connect; a credential with
  `expires_at` gets a planned reconnect at 4/5 of its lifetime, timed on ticks from the
  mint (a wall clock that jumps cannot make it early or late, and a nonsense lifetime
  cannot make a storm: at least RENEW_MIN_MS apart).
- renew(client): stop new publishes, let those in flight get their ack, DISCONNECT; the
  session reconnects at once (no backoff, counted in `renewals`, not as a failure).
"""

import time

from tether import log
from tether.compat import MICROPYTHON, build_once, ticks_add, ticks_ms

_log = log.getLogger("cloud")


def _once(fn):
    """fn() for something built once (the TLS context): see tether.compat.build_once."""
    return build_once(fn)


def __getattr__(name):
    # _NoDelay and verifying_context live in tether.cloud.tls (a TLS context keeps only that
    # small module alive, and this one can be dropped after the first connect); profiles
    # still import them from here.
    if name in ("_NoDelay", "verifying_context"):
        from tether.cloud import tls

        return getattr(tls, name)
    raise AttributeError(name)


def make_mqtt(client):
    ctx = _once(client.tls_context)
    native = getattr(ctx, "_ctx", None)
    if MICROPYTHON and native is not None and not getattr(ctx, "tether_insecure", True):
        # tlsctx's wrapper would keep all of tlsctx alive (its methods hold the module's
        # globals); this one does the same for a verifying context in a few lines.
        from tether.cloud.tls import _NoDelay

        ctx = _NoDelay(native)
    factory = client.mqtt_factory
    if factory is None:
        from tether.mqtt import MQTTClient as factory
    buf = client._rxbuf
    if len(buf) != client.MAX_PACKET:  # MAX_PACKET changed on the instance: its own size
        buf = None
    client._rxbuf = None  # the MQTT client holds it from now on
    kw = {}
    if client.open_connection is not None:
        kw["open_connection"] = client.open_connection
    return factory(
        client.client_id,
        client.server,
        client.port,
        keepalive=client.keepalive,
        ssl=ctx,
        server_hostname=client.server_hostname(),
        clean_session=getattr(client, "clean_session", True),
        max_packet=client.MAX_PACKET,
        on_message=client.router.post,
        bytes_topics=True,
        buffer=buf,
        **kw,
    )


def login(client, m):
    c = client.credentials
    if c.needs_time:
        from tether.hal import clock

        now = clock.unix_time()
    else:
        now = int(time.time())
    m.user, m.password = c.mint(now)
    exp = c.expires_at
    if exp is None:
        client._renew_at = None
        return
    # Renew at 4/5 of the lifetime, timed on ticks from now: a wall clock that jumps
    # later cannot make it early or late, and a nonsense lifetime cannot make a storm.
    life = (exp - now) * 1000
    at = ticks_add(ticks_ms(), max(life * 4 // 5, client.RENEW_MIN_MS))
    client._renew_at = at
    if client._timer is not None:
        client._arm(at)  # the timer task wakes for it even when it sleeps longer now


async def renew(client):
    # Planned: stop new publishes, let those in flight get their ack, then DISCONNECT.
    # The session reconnects at once (no backoff) with freshly minted credentials.
    m = client.mqtt
    if m is None or not m.connected:
        return
    client.session.renew(False)  # whatever ends this round now, it ends as planned
    client._draining = True
    try:
        await client.wait(lambda: not client._inflight, client.DRAIN_MS)
        _log.info("renewing credentials: reconnecting")
        await m.disconnect()
    finally:
        client._draining = False
        client.wake()
