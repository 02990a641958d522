"""The front's MQTT side: TLS listeners, CONNECT checked by the plug-in, amqtt behind.

Each plug-in's MQTT listener is an asyncio server of our own (plain, TLS, or mutual TLS;
core/accept.py: the accept path, up to the CONNECT, and the keepalive watchdog; this module:
amqtt, the sessions, the ACL, retained messages and the front's actions).
The front reads the CONNECT itself and asks the listener's plug-in who it is (or refuses
it with a CONNACK and a logged reason) before amqtt sees anything: amqtt would let a refused
client with a real device's id take that device's session over before refusing it. The
CONNECT is then replayed to amqtt with the client id replaced by the session key
("{cloud}|{device id}" unless the plug-in sets another), so two clouds never share a
session and an empty client id (Astarte) is fine. amqtt asks back (its auth and topic
plug-in hooks), and the front answers from the plug-in's ACL. A keepalive watchdog drops
clients silent for 1.5 x their keepalive (amqtt's broker does not).
"""

import asyncio
import inspect
import itertools
import logging
from dataclasses import dataclass

from amqtt.broker import Broker
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin

# The accept path lives in accept.py; its names stay importable from here (front.py).
from .accept import KEEPALIVE_FACTOR, Listeners, Session, server_context  # noqa: F401
from .fastpath import FAST, FastBroker
from .topics import covers, matches, valid_filter

log = logging.getLogger("cloudsim.broker")

_REGISTRY = {}  # amqtt builds plugins from a dotted path and a config dict: key -> front
_ids = itertools.count(1)


class SnapshotItemsDict(dict):
    """A dict whose items() is a list taken at the call, safe to iterate across awaits."""

    def items(self):
        return list(super().items())


_BASES = (FastBroker, Broker) if FAST else (Broker,)  # fastpath.py: amqtt 0.12 only


class _FrontBroker(*_BASES):
    # amqtt closes the connection of a client publishing to a "$" topic (MQTT-4.7.2-1 is
    # about wildcards, but amqtt applies it to publishing). Azure's devices publish on
    # $iothub/... and $dps/...: those publishes go to the front's plug-in instead (a
    # device's $ publish is for the cloud, never for another client).
    front = None

    async def _handle_message_delivery(self, client_session, handler, wait_deliver):
        msg = wait_deliver.result()
        if msg is not None and msg.topic and msg.topic.startswith("$"):
            s = self.front.sessions.get(client_session.client_id)
            if s is not None:
                if self.front.allowed(s, msg.topic, "publish"):
                    await self.front.published(s, msg)
                return True
        return await super()._handle_message_delivery(client_session, handler, wait_deliver)

    async def add_subscription(self, subscription, session):
        # A plug-in may cap the granted QoS and the number of filters per session (Azure:
        # QoS 1, 5 subscriptions); amqtt's own "max-qos" is broker-wide.
        s = self.front.sessions.get(session.client_id)
        if s is not None:
            topic, qos = subscription
            cap = s.plugin.max_subscriptions
            if cap is not None:
                mine = [
                    f
                    for f, subs in self._subscriptions.items()
                    if f != topic and any(x.client_id == session.client_id for x, _ in subs)
                ]
                if len(mine) >= cap:
                    self.front._event(
                        s, s.device.id, "denied", "subscribe %s (more than %d)" % (topic, cap)
                    )
                    return 0x80
            subscription = (topic, min(qos, s.plugin.max_qos))
        return await super().add_subscription(subscription, session)


class FrontPlugin(BaseAuthPlugin, BaseTopicPlugin):
    """amqtt's side of the front: its auth and topic hooks, and its events."""

    @dataclass
    class Config:
        key: int = 0

    @property
    def front(self):
        return _REGISTRY[self.config.key]

    async def authenticate(self, *, session):
        return self.front.amqtt_authenticate(session)

    async def topic_filtering(self, *, session=None, topic=None, action=None):
        s = self.front.session_for(session.client_id, action) if session is not None else None
        return s is not None and topic is not None and self.front.allowed(s, topic, action)

    async def on_broker_client_connected(self, *, client_id, client_session):
        s = self.front.sessions.get(client_id)
        if s is not None and s.amqtt is client_session:
            self.front.connected(s)

    async def on_broker_client_subscribed(self, *, client_id, topic, qos):
        s = self.front.sessions.get(client_id)
        if s is not None:
            self.front.subscribed(s, topic, qos)

    async def on_broker_client_unsubscribed(self, *, client_id, topic):
        s = self.front.sessions.get(client_id)
        if s is not None:
            self.front.unsubscribed(s, topic)

    async def on_broker_message_broadcast(self, *, client_id, message):
        s = self.front.sessions.get(client_id)
        if s is not None:
            await self.front.published(s, message)


class MqttFront(Listeners):
    """amqtt + the plug-ins' MQTT listeners. start()/stop() on the emulator's loop."""

    def __init__(self, front, listeners):
        self.front = front
        self.listeners = listeners  # [(Listener, Plugin, SSLContext or None, wanted port)]
        self.ports = {}
        self.sessions = {}  # session key -> the authenticated Session
        self._conns = {}  # (peer addr, peer port) -> Session, from accept to close
        self._pending = {}  # session key -> Session accepted by the front, not yet by amqtt
        self._offline = {}  # session key -> last Session of a persistent (CleanSession 0) one
        self._servers = []
        self._watchdog = None
        self._broker = None
        self._key = next(_ids)

    async def start(self):
        _REGISTRY[self._key] = self
        config = {
            "listeners": {"default": {"type": "external"}},
            "plugins": {"tools.cloudsim.core.broker.FrontPlugin": {"key": self._key}},
        }
        self._broker = _FrontBroker(config)
        self._broker.front = self
        # amqtt 0.12 iterates its subscription map across awaits while broadcasting; a
        # SUBSCRIBE landing meanwhile raised "dictionary changed size during iteration" and
        # the message was lost for every subscriber. Iterating a snapshot fixes that.
        self._broker._subscriptions = SnapshotItemsDict(self._broker._subscriptions)
        await self._broker.start()
        await self._listen()

    async def stop(self):
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        for server in self._servers:
            server.close()
        for s in list(self._conns.values()):
            s.transport.abort()
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
        for s in list(self.sessions.values()):
            self._ended(s)
        self.sessions.clear()
        _REGISTRY.pop(self._key, None)

    def _event(self, s, device_id, kind, text=""):
        self.front.event(device_id, kind, text, cloud=s.plugin.name)

    # -- asked by amqtt (FrontPlugin) -------------------------------------------------------

    def amqtt_authenticate(self, session):
        """Only connections the front let through get in. (Found by key, not by peer
        address: amqtt hands a persistent session's old Session object, with the old
        connection's address, to a client that resumes it.)"""
        s = self._pending.pop(session.client_id, None)
        if s is None:
            return False
        s.amqtt = session
        self.sessions[s.key] = s
        self._offline.pop(s.key, None)
        return True

    def session_for(self, key, action):
        """The session amqtt means; for a message queued to a persistent session while its
        device is away ("receive"), the last one it had."""
        s = self.sessions.get(key)
        if s is None and action == "receive":
            s = self._offline.get(key)
        return s

    def allowed(self, s, topic, action):
        try:
            acl = s.plugin.acl(s)
        except Exception as exc:
            log.exception("acl")
            self._event(s, s.device.id, "error", "acl(): %r" % exc)
            return False
        if action == "subscribe":
            ok = valid_filter(topic) and any(covers(p, topic) for p in acl.subscribe)
        elif action == "publish":
            ok = any(matches(p, topic) for p in acl.publish)
        else:  # receive: still within what it may subscribe to
            return any(matches(p, topic) for p in acl.subscribe)
        if not ok:
            self._event(s, s.device.id, "denied", "%s %s (ACL)" % (action, topic))
        return ok

    def connected(self, s):
        dev = s.device
        with self.front.registry.lock:
            dev.connected = True
            dev.auth = s.auth
            dev.keepalive = s.keepalive
            dev.connects += 1
            dev.subscriptions = set()
        resumed = bool(getattr(s.amqtt, "parent", 0))
        self._event(
            s,
            dev.id,
            "connected",
            "%s auth, keepalive %s s%s"
            % (s.auth, s.keepalive, ", session present" if resumed else ""),
        )
        self._hook(s, "on_connect", s)
        if resumed:  # the session's subscriptions are the device's again (and the plug-in's)
            for flt, subs in self._broker._subscriptions.items():
                for x, qos in subs:
                    if x.client_id == s.key:
                        self.subscribed(s, flt, qos)

    def _ended(self, s):
        if not s.clean_session:
            self._offline[s.key] = s
        dev = s.device
        with self.front.registry.lock:
            dev.connected = False
            dev.subscriptions = set()
        self._event(s, dev.id, "disconnected")
        self._hook(s, "on_disconnect", s)

    def subscribed(self, s, topic, qos):
        with self.front.registry.lock:
            s.device.subscriptions.add(topic)
        self._event(s, s.device.id, "subscribed", topic)
        self._hook(s, "on_subscribe", s, topic, qos)

    def unsubscribed(self, s, topic):
        with self.front.registry.lock:
            s.device.subscriptions.discard(topic)
        self._event(s, s.device.id, "unsubscribed", topic)
        self._hook(s, "on_unsubscribe", s, topic)

    async def published(self, s, message):
        result = self._on_publish(s, message)
        if inspect.isawaitable(result):
            await self._settle(s, result)

    def published_soon(self, s, message):
        """published() without waiting for an async on_publish (a task of its own)."""
        result = self._on_publish(s, message)
        if inspect.isawaitable(result):
            self.front.spawn(self._settle(s, result))

    def _on_publish(self, s, message):
        retain = bool(message.publish_packet and message.publish_packet.retain_flag)
        return self._hook(
            s, "on_publish", s, message.topic, bytes(message.data), message.qos, retain
        )

    async def _settle(self, s, result):
        try:
            await result
        except Exception as exc:
            log.exception("on_publish")
            self._event(s, s.device.id, "error", "on_publish: %r" % exc)

    def _hook(self, s, name, *args):
        try:
            return getattr(s.plugin, name)(*args)
        except Exception as exc:  # a plug-in's bug must not take the broker down
            log.exception(name)
            self._event(s, s.device.id, "error", "%s: %r" % (name, exc))
            return None

    # -- actions ----------------------------------------------------------------------------

    async def publish(self, topic, payload, qos=None, retain=False):
        # qos None: delivered at the QoS each subscriber asked for.
        if retain:
            await self._broker.retain_message(None, topic, bytes(payload), qos or 0)
        await self._broker.internal_message_broadcast(topic, bytes(payload), qos)

    async def publish_to(self, s, topic, payload, qos=None, unsubscribed=False):
        """To one session only, if it is still current, allowed and subscribed to topic, at
        the QoS it subscribed with (capped by qos). True once sent (QoS 1/2: acknowledged).
        unsubscribed: send even without a matching subscription (at qos, default 0), as a
        lenient server may."""
        if self.sessions.get(s.key) is not s or s.amqtt is None:
            return False
        if s.amqtt.transitions.state != "connected":  # it sent DISCONNECT, not yet ended
            return False
        if not self.allowed(s, topic, "receive"):
            return False
        granted = None
        for flt, subs in self._broker._subscriptions.items():
            if matches(flt, topic):
                for x, q in subs:
                    if x.client_id == s.key:
                        granted = q if granted is None else max(granted, q)
        handler = self._broker._get_handler(s.amqtt)
        if granted is None and unsubscribed:
            granted = qos or 0
        if granted is None or handler is None:
            return False
        qos = granted if qos is None else min(qos, granted)
        await handler.mqtt_publish(topic, bytes(payload), qos, retain=False)
        return True

    async def clear_session(self, device_id, cloud=None, timeout=5):
        """Abort the device's connection(s) and forget its persistent session: its next
        CONNACK says no session present (Astarte's way to make a device resync)."""
        keys = set()
        for s in list(self.sessions.values()) + list(self._offline.values()):
            if s.device.id == device_id and (cloud is None or s.plugin.name == cloud):
                keys.add(s.key)
                s.transport.abort()
        deadline = asyncio.get_running_loop().time() + timeout
        while any(k in self.sessions for k in keys):  # amqtt ends the connection first
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("the connection of %s did not end" % device_id)
            await asyncio.sleep(0.01)
        for key in keys:
            self._offline.pop(key, None)
            await self._broker._delete_session(key)
        return bool(keys)

    def drop(self, device_id, cloud=None):
        """Abort the device's connection(s) (no DISCONNECT, like a network loss)."""
        found = False
        for s in list(self.sessions.values()):
            if s.device.id == device_id and (cloud is None or s.plugin.name == cloud):
                s.transport.abort()
                found = True
        return found
