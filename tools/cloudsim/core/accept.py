"""The front's MQTT listeners up to the CONNECT (core/broker.py is what comes after).

Each plug-in's listener is an asyncio server of our own (plain, TLS, or mutual TLS). Per
connection: read the CONNECT, refuse it with a CONNACK and a logged reason or let the
plug-in say which device it is, then replay it to amqtt under the session key. A watchdog
drops clients silent for 1.5 x their keepalive (amqtt's broker does not).
"""

import asyncio
import inspect
import logging
import ssl
import time

from amqtt.adapters import StreamWriterAdapter

from . import tlsaccept
from .connect import TimedReader, read_connect
from .plugin import Refuse

# The same logger as broker.py: one MQTT side in the logs, whichever module speaks.
log = logging.getLogger("cloudsim.broker")

KEEPALIVE_FACTOR = 1.5  # protocols.md §1.7 item 8
_WATCH_PERIOD_S = 0.2
_CONNECT_TIMEOUT_S = 10  # a connection that sends no CONNECT is closed after this
_UNACCEPTABLE_PROTOCOL = 1  # CONNACK return codes (MQTT 3.1.1 §3.2.2.3)
_IDENTIFIER_REJECTED = 2
_NOT_AUTHORIZED = 5


class Session:
    """One MQTT connection as the front and the plug-ins see it."""

    def __init__(self, listener, plugin, peer, transport):
        self.listener = listener
        self.plugin = plugin
        self.peer = peer
        self.transport = transport
        self.last_rx = time.monotonic()
        self.keepalive = 0  # seconds, once authenticated
        self.client_id = None
        self.username = None
        self.password = None
        self.peer_cert = None  # DER of a verified client certificate
        self.clean_session = True
        self.device = None
        self.auth = None
        self.key = None  # the client id amqtt knows this session by
        self.amqtt = None


def server_context(cert_file, key_file, tls, ca_file=None):
    """TLS for a listener (plugin.Listener's tls modes)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert_file), str(key_file))
    if tls in ("mutual", "mutual-required"):
        ctx.load_verify_locations(cafile=str(ca_file))
        ctx.verify_mode = ssl.CERT_REQUIRED if tls == "mutual-required" else ssl.CERT_OPTIONAL
    return ctx


class Listeners:
    """MqttFront's accept path, kept apart from its session state and ACL (broker.py).

    Expects of the class it is mixed into: front, listeners, ports, sessions, _conns,
    _pending, _servers, _watchdog, _broker (amqtt), _event() and _ended()."""

    async def _listen(self):
        """Start every plug-in's listener, then the keepalive watchdog over them."""
        for listener, plugin, ctx, port in self.listeners:
            host = listener.host or self.front.host
            if listener.tls in ("mutual", "mutual-required"):
                # a refused client certificate is logged (asyncio alone drops it silently)
                server = await tlsaccept.start_server(
                    lambda r, w, li=listener, pl=plugin: self._accepted(li, pl, r, w),
                    lambda peer, why, li=listener, pl=plugin: self._tls_refused(li, pl, peer, why),
                    host,
                    port,
                    ctx,
                )
            else:
                server = await asyncio.start_server(
                    lambda r, w, li=listener, pl=plugin: self._accepted(li, pl, r, w),
                    host,
                    port,
                    ssl=ctx,
                    reuse_address=True,
                )
            self.ports[listener.name] = server.sockets[0].getsockname()[1]
            self._servers.append(server)
        self._watchdog = asyncio.ensure_future(self._watch_keepalive())

    async def _watch_keepalive(self):
        while True:
            await asyncio.sleep(_WATCH_PERIOD_S)
            now = time.monotonic()
            for s in list(self._conns.values()):
                if s.keepalive and now - s.last_rx > s.keepalive * KEEPALIVE_FACTOR:
                    self._event(
                        s,
                        s.client_id,
                        "keepalive",
                        "silent for %.1f s (keepalive %d s): dropped"
                        % (now - s.last_rx, s.keepalive),
                    )
                    s.keepalive = 0
                    s.transport.abort()

    def _tls_refused(self, listener, plugin, peer, reason):
        text = "%s:%s on %s: TLS handshake failed: %s" % (peer[0], peer[1], listener.name, reason)
        self.front.event(None, "tls-refused", text, cloud=plugin.name)

    async def _accepted(self, listener, plugin, reader, writer):
        peer = writer.get_extra_info("peername")[:2]
        s = self._conns[peer] = Session(listener, plugin, peer, writer.transport)
        try:
            try:
                connect = await asyncio.wait_for(read_connect(reader), _CONNECT_TIMEOUT_S)
            except (asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                self._event(s, None, "bad-connect", "%s:%s %r" % (peer[0], peer[1], exc))
                return
            code = await self._check(s, connect, writer)
            if code:
                writer.write(bytes([0x20, 2, 0, code]))
                await asyncio.wait_for(writer.drain(), 5)
                return
            await self._forget_clean(s)
            await self._broker.external_connected(
                TimedReader(reader, s, connect.encode(s.key)),
                StreamWriterAdapter(writer),
                "default",
            )
        except Exception as exc:
            log.info("connection %s ended: %r", peer, exc)
        finally:
            self._conns.pop(peer, None)
            if not writer.is_closing():
                writer.transport.abort()
            # A takeover ends the old connection after the new one authenticated: only
            # the connection that is still current may end the device's session.
            if s.key is not None and self._pending.get(s.key) is s:
                del self._pending[s.key]
            if s.key is not None and self.sessions.get(s.key) is s:
                del self.sessions[s.key]
                self._ended(s)

    async def _forget_clean(self, s):
        """amqtt drops a CleanSession 1 session up to a second after it ended and would let
        a CleanSession 0 connect meanwhile resume it (session present, the subscriptions of
        a session that should be gone): a real broker ends it with its connection
        [MQTT-3.1.2-6]."""
        old = self._broker._sessions.get(s.key)
        if old is not None and old[0].clean_session and s.key not in self.sessions:
            await self._broker._delete_session(s.key)

    async def _check(self, s, connect, writer):
        """0 if the CONNECT may go on, else the CONNACK return code to refuse it with."""
        s.client_id = connect.client_id
        if connect.protocol != "MQTT" or connect.level != 4:
            self._event(s, s.client_id, "refused", "not MQTT 3.1.1")
            return _UNACCEPTABLE_PROTOCOL
        if self.front.knobs.refuse_connect:
            self._event(s, s.client_id, "refused", "refuse_connect knob")
            return _NOT_AUTHORIZED
        s.username, s.password = connect.username, connect.password
        s.clean_session = connect.clean_session
        if not connect.client_id and not connect.clean_session:
            # [MQTT-3.1.3-8], as VerneMQ and mosquitto: a session needs a name to be found by
            self._event(s, s.client_id, "refused", "empty client id with CleanSession 0")
            return _IDENTIFIER_REJECTED
        if s.listener.tls in ("mutual", "mutual-required"):
            ssl_object = writer.get_extra_info("ssl_object")
            s.peer_cert = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        try:
            dev = s.plugin.authenticate(s)
            if inspect.isawaitable(dev):
                dev = await dev
            if dev is None:
                raise Refuse("no device")
        except Refuse as exc:
            self._event(s, s.client_id, "refused", exc.reason)  # never a password in here
            return exc.code
        except Exception as exc:
            log.exception("authenticate")
            self._event(s, s.client_id, "refused", "authenticate failed: %r" % exc)
            return _NOT_AUTHORIZED
        s.device = dev
        s.auth = s.auth or ("certificate" if s.peer_cert else "password")
        s.key = s.key or "%s|%s" % (s.plugin.name, dev.id)
        s.keepalive = connect.keepalive
        self._pending[s.key] = s
        return 0
