"""AkenzaClient: akenza's MQTT device connector on the cloud base (protocols.md §3).

    client = AkenzaClient("dev-1", key="ec_private.der")      # ES256, or an RSA key: RS256
    client.on_downlink = lambda client, sub_topic, payload: print(sub_topic, payload)
    await client.publish({"temperature": 22})                  # /up/device/id/dev-1
    await client.publish({"door": "open"}, topic="alerts")     # /up/device/id/dev-1/alerts
    await client.run()

Per connection: client id = device id, username "unused", password a JWT minted by
tether.akenza.credentials (iat, exp, aud; kid in the header) just before the connect; the
base reconnects with a fresh token at 4/5 of its lifetime (a planned renewal: the publish
in flight gets its PUBACK first, nothing is lost or sent twice). Then SUBSCRIBE
/down/device/id/{id}/# (QoS 1) and deliver the queued uplinks in order, QoS 1, each removed
only after its PUBACK.

Uplinks go through a queue: publish() returns once the value is queued (on flash when the
client has a `store`: tether.cloud.outbox, so it survives a reboot; else in RAM, at most
QUEUE_MAX, oldest dropped and counted). `await client.flush(ms)` waits for the queue to
empty. Uplink-secret mode: AkenzaClient(device_id, connector_id=..., secret=...): username
= connector id, password = secret, uplinks on /up/{secret}/id/{id}, no downlinks (their
topic in this mode is UNCONFIRMED).

`publish(topic, payload, qos)` with a str/bytes topic first is the base's raw publish (the
firmware's diagnostics use it); a dict first is an uplink.
"""

import asyncio
import json

from tether import log
from tether.cloud.client import CloudClient
from tether.compat import MICROPYTHON

_log = log.getLogger("akenza")

HOST = "mqtt.akenza.io"


def _load_signer(key, base_dir, se, cert):
    from tether.akenza.keyload import load_signer

    return load_signer(key, base_dir, se, cert)


def _read_ca(ca):
    from tether.akenza.keyload import read_ca

    return read_ca(ca)


def _decode(payload):
    b = bytes(payload)
    try:
        return json.loads(b)
    except Exception:  # not JSON, not UTF-8, nested past the parser: the raw bytes
        return b


def _channel(topic):
    """The sub-topic as the outbox channel (bytes; b"" for none)."""
    if topic is None:
        return b""
    t = topic.encode() if isinstance(topic, str) else bytes(topic)
    t = t.strip(b"/")
    for c in b"+#\x00\x1f":
        if c in t:
            raise ValueError("sub-topic %r: no MQTT wildcard, NUL or 0x1f" % (topic,))
    return t


class AkenzaClient(CloudClient):
    MAX_PACKET = 4096  # downlinks are small JSON objects; larger ones are dropped, counted
    QUEUE_MAX = 64  # uplinks queued in RAM without a store; the oldest goes first

    def __init__(
        self,
        device_id,
        key=None,
        algorithm=None,
        host=HOST,
        port=None,
        audience=None,
        token_lifetime=1200,
        keepalive=60,
        ca=None,
        tls=True,
        server_hostname=None,
        connector_id=None,
        secret=None,
        username="unused",
        kid=None,
        cert=None,
        se=None,
        base_dir=None,
        sync_mode=False,
        store=None,
        on_downlink=None,
    ):
        if not device_id or "/" in device_id or "+" in device_id or "#" in device_id:
            raise ValueError("device id %r: not empty, no / + #" % (device_id,))
        creds = None
        if secret is not None or connector_id is not None:
            if key is not None:
                raise ValueError("either key (JWT) or connector_id + secret (uplink secret)")
            if not secret or not connector_id:
                raise ValueError("uplink-secret mode needs both connector_id and secret")
            up = "/up/%s/id/%s" % (secret, device_id)
        else:
            if key is None:
                raise ValueError("key missing: the device's private key (or se05x:...)")
            from tether.akenza.credentials import JwtCredentials
            from tether.compat import build_once

            if isinstance(key, str) and key.startswith(("se05x:", "pkcs11:")):
                signer = _load_signer(key, base_dir, se, cert)  # the HSM modules stay
            else:
                # tether.akenza.keyload, and what loading the key took, go again on a board.
                signer = build_once(_load_signer, key, base_dir, se, cert)
                if MICROPYTHON and signer.algorithm == "ES256":
                    # Kept: p256's 4 KB comb table is one allocation, easy to find in this
                    # young heap, maybe not at a renewal once TLS and MQTT have cut it up.
                    import tether.p256_table  # noqa: F401
            creds = JwtCredentials(
                device_id, signer, audience, token_lifetime, username, algorithm, kid
            )
            up = "/up/device/id/" + device_id
        if tls and ca is None and MICROPYTHON:
            from tether.akenza.keyload import need_ca

            raise need_ca(host)
        if port is None:
            port = 8883 if tls else 1883
        CloudClient.__init__(
            self,
            device_id,
            host,
            port,
            credentials=creds,
            keepalive=keepalive,
            sync_mode=sync_mode,
            store=store,
        )
        if creds is None:
            self.username = connector_id
            self._password = secret
        self.device_id = device_id
        self.tls = tls
        self._ca = None
        if tls and ca is not None:
            from tether.compat import build_once

            self._ca = build_once(_read_ca, ca)
        self._hostname = server_hostname
        self._up = up.encode()
        self._down = None if creds is None else ("/down/device/id/%s/#" % device_id).encode()
        self.on_downlink = on_downlink
        self.outbox = None  # tether.cloud.outbox.Outbox, made from `store` when first needed
        self._queue = []  # (channel, payload) without a store
        c = self.counters
        c["queued"] = 0  # uplinks accepted by publish()
        c["uplinks"] = 0  # uplinks acknowledged by the broker (PUBACK)
        c["dropped"] = 0  # uplinks dropped: the queue (or the store) was full
        c["downlinks"] = 0  # downlinks received

    # -- uplinks -----------------------------------------------------------------------

    async def publish(self, data, topic=None, qos=None):
        """Queue `data` (a dict) as JSON for /up/.../{device_id}[/{topic}]; returns once it
        is queued (on flash with a store). With a str/bytes first argument: the base's
        publish(topic, payload, qos=1) on the connection, e.g. for diagnostics."""
        if isinstance(data, (str, bytes, bytearray)):
            if topic is None:
                raise TypeError("an uplink is a dict; publish(topic, payload) needs a payload")
            return await CloudClient.publish(self, data, topic, 1 if qos is None else qos)
        self.send(data, topic)

    def send(self, data, topic=None):
        """publish() for sync code: queue the uplink, deliver it when connected."""
        if not isinstance(data, dict):
            raise TypeError("an akenza uplink is a JSON object: pass a dict")
        ch = _channel(topic)
        payload = json.dumps(data).encode()
        c = self.counters
        ob = self._box()
        if ob is not None:
            if ob.put(ch, payload) is None:
                c["dropped"] += 1
                _log.warning("store full: uplink dropped")
        else:
            q = self._queue
            if len(q) >= self.QUEUE_MAX:
                q.pop(0)
                c["dropped"] += 1
                _log.warning("%d uplinks queued: the oldest dropped", len(q))
            q.append((ch, payload))
        c["queued"] += 1
        self.wake()

    @property
    def pending(self):
        """Uplinks queued during this run and not acknowledged yet."""
        ob = self.outbox
        return len(self._queue) + (len(ob._seqs) if ob is not None else 0)

    async def flush(self, timeout_ms=30000):
        """Wait until every queued uplink is acknowledged; False after timeout_ms."""
        if self._ev is None:  # run() was just created as a task and has not begun yet
            await asyncio.sleep(0)
            if self._ev is None:
                raise RuntimeError("flush() waits for run() (or start()): start it first")
        return await self.wait(self._empty, timeout_ms)

    def _empty(self):
        return not self.pending

    def _box(self):
        ob = self.outbox
        if ob is None and self.store is not None:
            from tether.cloud.outbox import Outbox

            ob = self.outbox = Outbox(self.store)
        return ob

    async def _send(self, channel, payload):
        topic = self._up + b"/" + channel if channel else self._up
        await CloudClient.publish(self, topic, payload, 1)
        self.counters["uplinks"] += 1
        self.wake()  # flush() waits for this (a PUBACK wakes nobody in the base)

    async def _deliver(self):
        ob = self.outbox
        if ob is not None:
            await ob.replay(self._send)  # what an earlier boot queued, first
            await ob.flush(self._send)
        q = self._queue
        while q:
            await self._send(q[0][0], q[0][1])
            q.pop(0)  # acknowledged: only now is it the cloud's

    # -- connection --------------------------------------------------------------------

    def begin(self):
        self._box()

    def tls_context(self):
        if not self.tls:
            return None
        from tether import tlsctx

        return tlsctx.client_context(cadata=self._ca)  # None: CPython's system store

    def stop(self):
        CloudClient.stop(self)
        loop = self._loop
        if not self.async_mode and loop is not None:
            # Sync mode: nothing runs the loop after this; let the session end its round and
            # the cancelled tasks finish, or they are destroyed pending (the base does not).
            for _ in range(400):  # at most 2 s
                if self.session.state == "stopped":
                    break
                loop.run_until_complete(_pause(5))
            loop.run_until_complete(_pause(0))

    def ready(self):
        CloudClient.ready(self)
        self.wake()  # start() in sync mode waits for `connected`: tell it (the base does not)

    def server_hostname(self):
        return self._hostname or self.server

    async def serve(self):
        if self._down is not None:
            await self.subscribe(self._down, self._on_down)
        self.ready()
        while True:
            await self._deliver()
            await self.wait(self._work, 60000)

    def _work(self):
        return self.pending > 0

    async def _connect(self):
        try:
            return await CloudClient._connect(self)
        except Exception as exc:
            code = getattr(exc, "code", None)
            if code not in (4, 5) or type(exc).__name__ != "MQTTConnectError":
                raise
            from tether.akenza.refused import refused

            raise refused(self, code)

    # -- downlinks ---------------------------------------------------------------------

    def _on_down(self, topic, payload):
        n = len(self._down) - 2  # the filter without "/#"
        sub = bytes(topic[n + 1 :]).decode() if len(topic) > n else ""
        self.counters["downlinks"] += 1
        h = self.on_downlink
        if h is None:
            _log.info("downlink on %s: no on_downlink handler", sub or "(no sub-topic)")
            return None
        try:
            r = h(self, sub, _decode(payload))
        except Exception as exc:
            self.callback_failed("on_downlink", exc)
            return None
        if r is not None and hasattr(r, "send"):
            return self._guard(r)
        return None

    async def _guard(self, coro):
        try:
            await coro
        except Exception as exc:
            self.callback_failed("on_downlink", exc)


async def _pause(ms):
    await asyncio.sleep(ms / 1000)  # run_until_complete needs a coroutine (MicroPython)
