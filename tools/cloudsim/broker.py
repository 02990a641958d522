"""The embedded MQTT broker: amqtt behind TLS listeners of our own.

We accept TCP/TLS connections ourselves (so we choose the TLS settings per port and know
which port a connection came in on), read and check the CONNECT there (bad credentials get
CONNACK 5 and never reach amqtt), then hand the stream, CONNECT included, to amqtt as an
"external" listener. One amqtt plugin (CloudPlugin) admits only the connections checked
here, enforces per-device topics and forwards connect/subscribe/publish events to the
Cloud. A keepalive watchdog drops clients silent for 1.5 x their keepalive (amqtt's broker
does not).

Ports: "password" (TLS, server auth only; username/password), "certificate" (mutual TLS
against the test CA; the client certificate names the device), and optionally "plain" (no
TLS, password auth: for debugging only).
"""

import asyncio
import itertools
import logging
import ssl
import time
from dataclasses import dataclass

from amqtt.adapters import StreamReaderAdapter, StreamWriterAdapter
from amqtt.broker import Broker
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin

from . import auth

log = logging.getLogger("cloudsim.broker")

# amqtt builds plugins from a dotted path and a config dict: the key finds our broker.
_REGISTRY = {}
_ids = itertools.count(1)

KEEPALIVE_FACTOR = 1.5  # protocols.md §1.7 item 8
_WATCH_PERIOD_S = 0.2
_CONNECT_TIMEOUT_S = 10  # a connection that sends no CONNECT is closed after this
_MAX_CONNECT = 4096
# CONNACK return codes (MQTT 3.1.1 §3.2.2.3)
_UNACCEPTABLE_PROTOCOL = 1
_NOT_AUTHORIZED = 5


class SnapshotItemsDict(dict):
    """A dict whose items() is a list taken at the call, safe to iterate across awaits."""

    def items(self):
        return list(super().items())


class _Conn:
    """One TCP connection: its port kind, transport, and when it last sent a byte."""

    def __init__(self, kind, transport):
        self.kind = kind
        self.transport = transport
        self.last_rx = time.monotonic()
        self.keepalive = 0  # seconds, once authenticated
        self.client_id = None
        self.device = None  # the Device the CONNECT proved to be, once checked
        self.auth = None  # "password" / "certificate"


class _TimedReader(StreamReaderAdapter):
    # amqtt's broker does not act on keepalive (its read timeout is a no-op), so every read
    # is stamped here and a watchdog drops connections silent for 1.5 x keepalive.
    def __init__(self, reader, conn):
        super().__init__(reader)
        self._conn = conn

    async def read(self, n=-1):
        data = await super().read(n)
        self._conn.last_rx = time.monotonic()
        return data


class _ReplayReader(_TimedReader):
    """Hands amqtt the CONNECT packet we already read and checked, then the stream."""

    def __init__(self, reader, conn, prefix):
        super().__init__(reader, conn)
        self._prefix = prefix

    async def read(self, n=-1):
        if not self._prefix:
            return await super().read(n)
        if n == -1 or n >= len(self._prefix):
            data, self._prefix = self._prefix, b""
            if n != -1 and n > len(data):
                data += await super().read(n - len(data))
            return data
        data, self._prefix = self._prefix[:n], self._prefix[n:]
        return data


class Connect:
    """The fields of an MQTT 3.1.1 CONNECT the cloud decides on."""

    def __init__(self, body):
        self.raw_len = len(body)
        pos = 0

        def field():
            nonlocal pos
            if pos + 2 > len(body):
                raise ValueError("CONNECT truncated")
            size = int.from_bytes(body[pos : pos + 2], "big")
            if pos + 2 + size > len(body):
                raise ValueError("CONNECT truncated")
            pos += 2 + size
            return body[pos - size : pos]

        self.protocol = field().decode("utf-8", "replace")
        if pos + 4 > len(body):
            raise ValueError("CONNECT truncated")
        self.level, flags = body[pos], body[pos + 1]
        self.keepalive = int.from_bytes(body[pos + 2 : pos + 4], "big")
        pos += 4
        self.client_id = field().decode("utf-8", "replace")
        if flags & 0x04:  # will topic + message
            field()
            field()
        self.username = field().decode("utf-8", "replace") if flags & 0x80 else None
        self.password = bytes(field()) if flags & 0x40 else None


async def read_connect(reader, max_len=_MAX_CONNECT):
    """-> (raw packet bytes, Connect). ValueError for anything but a sane CONNECT."""
    head = await reader.readexactly(1)
    if head[0] != 0x10:
        raise ValueError("first packet is not CONNECT")
    raw = bytearray(head)
    length, shift = 0, 0
    for _ in range(4):
        b = (await reader.readexactly(1))[0]
        raw.append(b)
        length |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            break
    else:
        raise ValueError("bad remaining length")
    if length > max_len:
        raise ValueError("CONNECT too large")
    body = await reader.readexactly(length)
    raw += body
    return bytes(raw), Connect(body)


class CloudPlugin(BaseAuthPlugin, BaseTopicPlugin):
    @dataclass
    class Config:
        key: int = 0

    @property
    def owner(self):
        return _REGISTRY[self.config.key]

    async def authenticate(self, *, session):
        return self.owner.authenticate(session)

    async def topic_filtering(self, *, session=None, topic=None, action=None):
        if session is None or topic is None:
            return False
        dev = self.owner.sessions.get(session.client_id)
        return auth.topic_allowed(dev, topic)

    async def on_broker_client_connected(self, *, client_id, client_session):
        self.owner.connected(client_id, client_session)

    async def on_broker_client_disconnected(self, *, client_id, client_session):
        self.owner.disconnected(client_id, client_session)

    async def on_broker_client_subscribed(self, *, client_id, topic, qos):
        dev = self.owner.sessions.get(client_id)
        if dev is not None:
            self.owner.cloud.on_subscribed(dev, topic)

    async def on_broker_client_unsubscribed(self, *, client_id, topic):
        dev = self.owner.sessions.get(client_id)
        if dev is not None:
            self.owner.cloud.on_unsubscribed(dev, topic)

    async def on_broker_message_broadcast(self, *, client_id, message):
        dev = self.owner.sessions.get(client_id)
        if dev is not None:
            self.owner.cloud.on_message(dev, message.topic, message.data)


def server_context(cert_file, key_file, ca_file=None):
    """TLS for a listener. With ca_file the client may present a certificate, verified
    against it; none at all is allowed by TLS so that the refusal is a CONNACK, not a
    handshake failure the device cannot explain."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert_file), str(key_file))
    if ca_file:
        ctx.load_verify_locations(cafile=str(ca_file))
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


class CloudBroker:
    """amqtt + our listeners. start()/stop() on the event loop that will run it."""

    def __init__(self, store, knobs, cloud, contexts, host="127.0.0.1", ports=None):
        self.store = store
        self.knobs = knobs
        self.cloud = cloud
        self.contexts = contexts  # kind -> SSLContext or None (plain)
        self.host = host
        self.wanted_ports = dict(ports or {})  # kind -> port (0 = any free port)
        self.ports = {}
        self.sessions = {}  # client id -> Device, for authenticated sessions
        self._session_objs = {}  # client id -> the amqtt Session that authenticated
        self._conns = {}  # (peer addr, peer port) -> _Conn
        self._servers = []
        self._watchdog = None
        self._broker = None
        self._key = next(_ids)

    async def start(self):
        _REGISTRY[self._key] = self
        config = {
            "listeners": {"default": {"type": "external"}},
            "plugins": {"tools.cloudsim.broker.CloudPlugin": {"key": self._key}},
        }
        self._broker = Broker(config)
        # amqtt 0.12 iterates its subscription map across awaits while broadcasting; a
        # SUBSCRIBE landing meanwhile raised "dictionary changed size during iteration" and
        # the message was lost for every subscriber. Iterating a snapshot fixes that.
        self._broker._subscriptions = SnapshotItemsDict(self._broker._subscriptions)
        await self._broker.start()
        for kind, port in self.wanted_ports.items():
            server = await asyncio.start_server(
                lambda r, w, kind=kind: self._accepted(kind, r, w),
                self.host,
                port,
                ssl=self.contexts.get(kind),
                reuse_address=True,
            )
            self.ports[kind] = server.sockets[0].getsockname()[1]
            self._servers.append(server)
        self._watchdog = asyncio.ensure_future(self._watch_keepalive())

    async def _watch_keepalive(self):
        while True:
            await asyncio.sleep(_WATCH_PERIOD_S)
            now = time.monotonic()
            for conn in list(self._conns.values()):
                if conn.keepalive and now - conn.last_rx > conn.keepalive * KEEPALIVE_FACTOR:
                    self.store.event(
                        conn.client_id,
                        "keepalive",
                        "silent for %.1f s (keepalive %d s): dropped"
                        % (now - conn.last_rx, conn.keepalive),
                    )
                    conn.keepalive = 0
                    conn.transport.abort()

    async def stop(self):
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        for server in self._servers:
            server.close()
        for conn in list(self._conns.values()):
            conn.transport.abort()
        for server in self._servers:
            try:
                await asyncio.wait_for(server.wait_closed(), 2)
            except asyncio.TimeoutError:
                pass
        self._servers = []
        if self._broker is not None:
            try:
                await asyncio.wait_for(self._broker.shutdown(), 5)
            except Exception as exc:  # a broker that will not stop must not block a restart
                log.warning("broker shutdown: %r", exc)
            self._broker = None
        for dev in list(self.sessions.values()):
            self.cloud.on_disconnected(dev)
        self.sessions.clear()
        self._session_objs.clear()
        _REGISTRY.pop(self._key, None)

    async def _accepted(self, kind, reader, writer):
        # Credentials are checked here, before amqtt sees the connection: amqtt would let
        # a refused client with a real device's id clear and take over that device's
        # session before sending its CONNACK.
        peer = writer.get_extra_info("peername")[:2]
        conn = self._conns[peer] = _Conn(kind, writer.transport)
        try:
            try:
                raw, connect = await asyncio.wait_for(read_connect(reader), _CONNECT_TIMEOUT_S)
            except (asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                self.store.event(None, "bad-connect", "%s:%s %r" % (peer[0], peer[1], exc))
                return
            code = self._check(conn, connect, writer)
            if code:
                writer.write(bytes([0x20, 2, 0, code]))
                await asyncio.wait_for(writer.drain(), 5)
                return
            await self._broker.external_connected(
                _ReplayReader(reader, conn, raw), StreamWriterAdapter(writer), "default"
            )
        except Exception as exc:
            log.info("connection %s ended: %r", peer, exc)
        finally:
            self._conns.pop(peer, None)
            if not writer.is_closing():
                writer.transport.abort()

    def _check(self, conn, connect, writer):
        """0 if the CONNECT may go on, else the CONNACK return code to refuse it with."""
        client_id = connect.client_id
        if connect.protocol != "MQTT" or connect.level != 4:
            self.store.event(client_id, "refused", "not MQTT 3.1.1")
            return _UNACCEPTABLE_PROTOCOL
        if self.knobs.refuse_connect:
            self.store.event(client_id, "refused", "refuse_connect knob")
            return _NOT_AUTHORIZED
        if conn.kind == "certificate":
            ssl_object = writer.get_extra_info("ssl_object")
            der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
            dev = auth.check_certificate(self.store, client_id, der)
            how = "certificate"
        else:
            dev = auth.check_password(self.store, client_id, connect.username, connect.password)
            how = "password"
        if dev is None:
            # Never log the password itself.
            self.store.event(
                client_id, "refused", "bad %s credentials on the %s port" % (how, conn.kind)
            )
            return _NOT_AUTHORIZED
        conn.client_id = client_id
        conn.device = dev
        conn.auth = how
        conn.keepalive = connect.keepalive
        return 0

    # -- called by the plugin ----------------------------------------------------------------

    def authenticate(self, session):
        """amqtt's check: only connections our front door let through get in."""
        conn = self._conns.get((session.remote_address, session.remote_port))
        if conn is None or conn.device is None or conn.client_id != session.client_id:
            return False
        session.attributes["cloudsim.auth"] = conn.auth
        self.sessions[session.client_id] = conn.device
        self._session_objs[session.client_id] = session
        return True

    def connected(self, client_id, session):
        dev = self.sessions.get(client_id)
        if dev is not None:
            self.cloud.on_connected(
                dev, session.attributes.get("cloudsim.auth"), session.keep_alive
            )

    def disconnected(self, client_id, session):
        # A reconnect that takes over a stale session ends the old one after the new one
        # authenticated: only the session that is still current may clear the mapping.
        if self._session_objs.get(client_id) is not session:
            return
        del self._session_objs[client_id]
        dev = self.sessions.pop(client_id, None)
        if dev is not None:
            self.cloud.on_disconnected(dev)

    # -- actions ----------------------------------------------------------------------------------

    async def publish(self, topic, payload):
        # qos None: delivered at the QoS each subscriber asked for.
        await self._broker.internal_message_broadcast(topic, payload, None)

    def drop(self, device_id):
        """Abort the device's TCP connection (no DISCONNECT, like a network loss)."""
        session = self._broker.sessions.get(device_id) if self._broker else None
        if session is None:
            return False
        peer = (session[0].remote_address, session[0].remote_port)
        conn = self._conns.get(peer)
        if conn is None:
            return False
        conn.transport.abort()
        return True
