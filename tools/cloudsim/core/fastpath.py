"""amqtt's per-message path, the same behaviour for less CPU (the emulator's throughput).

Both CPython benches that send QoS 1 messages one after the other (bench/azure_vs_sdk.py,
bench/astarte.py) are a ping-pong with the emulator, so its CPU per message weighs on both
clients. amqtt 0.12 spent ~0.55 ms of it per PUBLISH, mostly on asyncio machinery rather
than on the message: a read timeout around every packet's fixed header (a task and a timer;
the broker's timeout handler is a no-op), a keepalive write timer re-armed after every
packet sent (its handler too is a no-op), a task per plug-in call (the topic ACL and the
broadcast event, where the front is the only plug-in), a broadcast task even when nobody
subscribes to the topic, and debug lines formatted (f-strings) whether debug is on or not.

FastHandler replaces BrokerProtocolHandler methods (each connection's handler gets this
class), FastBroker the Broker ones (mixed into broker.py's _FrontBroker). Each replacement
does what amqtt's did, in the same order, the same packets acted on (see the comments);
only amqtt 0.12 gets them (FAST), since they replace its internals. bench/azure_vs_sdk.py's
"emulator CPU per message" on a calm machine: 0.45-0.50 ms (Tether's client) and 0.53-0.63
(the SDK's) before, 0.27 and 0.28-0.36 after; Astarte's pipelined datastreams 0.43-0.57 ->
0.15-0.20.
"""

import asyncio
import collections
import logging

import amqtt
from amqtt.contexts import Action
from amqtt.errors import MQTTError, NoDataError, ProtocolHandlerError
from amqtt.events import BrokerEvents, MQTTEvents
from amqtt.mqtt import packet_class
from amqtt.mqtt.constants import QOS_0, QOS_1
from amqtt.mqtt.packet import (
    CONNACK,
    CONNECT,
    DISCONNECT,
    PINGREQ,
    PINGRESP,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    RESERVED_0,
    RESERVED_15,
    SUBACK,
    SUBSCRIBE,
    UNSUBACK,
    UNSUBSCRIBE,
    MQTTFixedHeader,
)
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.session import IncomingApplicationMessage

FAST = amqtt.__version__.startswith("0.12.")
_END_TURNS = 20  # at most, for the writes under way when a client's stream ends

# packet type -> the handler method amqtt runs as a task for it (CONNECT: awaited in line)
_HANDLERS = {
    CONNACK: "handle_connack",
    SUBSCRIBE: "handle_subscribe",
    UNSUBSCRIBE: "handle_unsubscribe",
    SUBACK: "handle_suback",
    UNSUBACK: "handle_unsuback",
    PUBACK: "handle_puback",
    PUBREC: "handle_pubrec",
    PUBREL: "handle_pubrel",
    PUBCOMP: "handle_pubcomp",
    PINGREQ: "handle_pingreq",
    PINGRESP: "handle_pingresp",
    PUBLISH: "handle_publish",
    DISCONNECT: "handle_disconnect",
}


async def _let_run(running):
    # amqtt's read timeout (asyncio.wait_for: a task for the read, a callback, the reader's
    # wake-up) gave the tasks of the packets read so far three turns of the event loop
    # before the next packet, or the end of the stream, which cancels those still running,
    # was read. They get them here (only while the last one is not done: none when each
    # message is handled in line): a PUBACK and a DISCONNECT read at once are both acted
    # on, and a client's QoS 2 PUBLISHes before its end get their PUBRECs written.
    for _ in range(3):
        if not running or running[-1].done():
            return
        await asyncio.sleep(0)


class FastHandler(BrokerProtocolHandler):
    """A broker connection's handler: amqtt's, with a cheaper read loop, send and publish."""

    async def _reader_loop(self):
        # amqtt's loop, less the asyncio.wait_for(keepalive) around each fixed header: on a
        # timeout it only called handle_read_timeout(), a no-op in the broker (the front's
        # watchdog enforces keepalive), and it cost a task and a timer per packet (its yield
        # to the loop is kept where it mattered, below).
        debug = self.logger.isEnabledFor(logging.DEBUG)
        running = collections.deque()
        loop = self._loop
        while True:
            try:
                self._reader_ready.set()
                await _let_run(running)
                while running and running[0].done():
                    running.popleft()
                if self.reader is None:
                    self.logger.warning("no reader: the connection is gone")
                    break
                fixed_header = await MQTTFixedHeader.from_stream(self.reader)
                if not fixed_header:
                    break
                ptype = fixed_header.packet_type
                if ptype in (RESERVED_0, RESERVED_15):
                    self.logger.warning(
                        "%s sent a reserved packet type (forbidden): connection closed",
                        self.session.client_id,
                    )
                    await self.handle_connection_closed()
                    continue
                cls = packet_class(fixed_header)
                packet = await cls.from_stream(self.reader, fixed_header=fixed_header)
                await self.plugins_manager.fire_event(
                    MQTTEvents.PACKET_RECEIVED, packet=packet, session=self.session
                )
                if ptype == CONNECT:
                    await self.handle_connect(packet)
                    continue
                name = _HANDLERS.get(ptype)
                if name is None:
                    self.logger.warning("packet type %s not handled by a broker: ignored", ptype)
                    continue
                if ptype == PUBLISH and not running and packet.qos in (QOS_0, QOS_1):
                    if not self._write_lock.locked():
                        # In line rather than a task: nothing this client sent earlier is
                        # still being handled (same order), and neither the queueing nor the
                        # PUBACK waits (the lock is free; drain() waits only on a client
                        # that stopped reading).
                        await self._publish_in_line(packet)
                        continue
                running.append(loop.create_task(getattr(self, name)(packet)))
            except MQTTError:
                if debug:
                    self.logger.debug("packet refused (MQTT error), dropped")
            except NoDataError:
                pass
            except asyncio.CancelledError:
                break
            except Exception as e:  # (a TimeoutError too: amqtt looped on its own, now gone)
                self.logger.warning("%s: reading a packet failed: %r", type(self), e)
                break
        try:  # stop() cancels the reader and waits for what follows: a few turns at most
            await _let_run(running)
            for _ in range(_END_TURNS):  # and the writes under way end as they would have
                if not self._sending:
                    break
                await asyncio.sleep(0)
        except asyncio.CancelledError:  # cancelled (again) meanwhile: end as amqtt's loop
            pass
        while running:
            running.popleft().cancel()
        await self.handle_connection_closed()
        self._reader_stopped.set()
        await self.stop()

    async def _send_packet(self, packet):
        # amqtt's, less re-arming the keepalive write timer after each packet: its handler
        # is a no-op in the broker (the one start() armed is still cancelled by stop()).
        self._sending += 1
        try:
            if self.writer:
                async with self._write_lock:
                    await packet.to_stream(self.writer)
            await self.plugins_manager.fire_event(
                MQTTEvents.PACKET_SENT, packet=packet, session=self.session
            )
        except (ConnectionResetError, BrokenPipeError):
            await self.handle_connection_closed()
        except asyncio.CancelledError as e:
            raise ProtocolHandlerError("Packet handling was cancelled") from e
        except Exception as e:
            self.logger.warning("sending a packet failed: %s", e)
            raise
        finally:
            self._sending -= 1

    _sending = 0  # _send_packet calls under way (each waits for the write lock in turn)

    async def _publish_in_line(self, packet):
        try:
            await self.handle_publish(packet)
        except (MQTTError, NoDataError, asyncio.CancelledError):
            raise
        except Exception:  # as amqtt's task would have: this packet's failure only
            self.logger.exception("handle_publish")

    async def handle_publish(self, publish_packet):
        # amqtt's, less a debug line formatted (with the queue size) after every message;
        # then wakes FastBroker's client loop (the message is in the session's queue).
        vh = publish_packet.variable_header
        if publish_packet.topic_name is None or publish_packet.data is None:
            return
        message = IncomingApplicationMessage(
            vh.packet_id if vh else None,
            publish_packet.topic_name,
            publish_packet.qos,
            publish_packet.data,
            publish_packet.retain_flag,
        )
        message.publish_packet = publish_packet
        try:
            await self._handle_message_flow(message)
        finally:
            self.wake()

    _wake = None  # the future FastBroker's client loop sleeps on

    def wake(self, _=None):
        w = self._wake
        if w is not None and not w.done():
            w.set_result(None)


class FastBroker:
    """amqtt Broker methods for broker.py's _FrontBroker (mixed in before Broker). Expects
    `front` (the MqttFront), which answers amqtt's topic and message hooks."""

    async def _handle_client_session(self, reader, writer, client_session, handler, *args):
        if type(handler) is BrokerProtocolHandler:  # the same object, FastHandler's methods
            handler.__class__ = FastHandler
        return await super()._handle_client_session(reader, writer, client_session, handler, *args)

    async def _client_message_loop(self, client_session, handler):
        # amqtt's loop: the same four waits (disconnect, subscribe, unsubscribe, a message
        # to deliver), handled in the same order when several are ready. amqtt made a task
        # per message (taking it from the session's queue) and an asyncio.wait over the four
        # each time; here a queued message is taken in line, and the loop sleeps on one
        # future that any of them wakes (FastHandler.wake: a message was queued).
        if not isinstance(handler, FastHandler):
            return await super()._client_message_loop(client_session, handler)
        loop = asyncio.get_running_loop()

        def waiter(coro):
            task = asyncio.ensure_future(coro)
            task.add_done_callback(handler.wake)
            return task

        disconnect_waiter = waiter(handler.wait_disconnect())
        subscribe_waiter = waiter(handler.get_next_pending_subscription())
        unsubscribe_waiter = waiter(handler.get_next_pending_unsubscription())
        connected = True
        while connected:
            try:
                queue = client_session.delivered_message_queue
                deliver = handler.session is not None and not queue.empty()
                gone = disconnect_waiter.done()
                sub, unsub = subscribe_waiter.done(), unsubscribe_waiter.done()
                if not (deliver or gone or sub or unsub):
                    handler._wake = loop.create_future()
                    try:
                        await handler._wake
                    finally:
                        handler._wake = None
                    continue
                if gone:
                    await self._handle_disconnect(client_session, handler, disconnect_waiter)
                    connected = False
                if sub:
                    await self._handle_subscription(client_session, handler, subscribe_waiter)
                    subscribe_waiter = waiter(handler.get_next_pending_subscription())
                if unsub:
                    await self._handle_unsubscription(client_session, handler, unsubscribe_waiter)
                    unsubscribe_waiter = waiter(handler.get_next_pending_unsubscription())
                if deliver:
                    taken = loop.create_future()
                    taken.set_result(queue.get_nowait())
                    if not await self._handle_message_delivery(client_session, handler, taken):
                        break
            except asyncio.CancelledError:
                break
        waiters = [disconnect_waiter, subscribe_waiter, unsubscribe_waiter]
        for w in waiters:
            w.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)

    async def _topic_filtering(self, session, topic, action):
        # amqtt asks every topic plug-in through a task each (and gathers them); the front
        # is the only one: FrontPlugin.topic_filtering, called in line.
        if not self.plugins_manager.is_topic_filtering_enabled():
            return True
        front = self.front
        s = front.session_for(session.client_id, action) if session is not None else None
        return s is not None and topic is not None and front.allowed(s, topic, action)

    async def _handle_message_delivery(self, client_session, handler, wait_deliver):
        # amqtt's, step by step, with the plug-in calls in line (FrontPlugin's
        # on_broker_message_broadcast was a task: published_soon() still does not wait for
        # an async on_publish) and no debug lines formatted when debug is off.
        message = wait_deliver.result()
        await self.plugins_manager.fire_event(
            BrokerEvents.MESSAGE_RECEIVED, client_id=client_session.client_id, message=message
        )
        if message is None:
            return True
        topic, cid = message.topic, client_session.client_id
        if not topic:
            self.logger.warning("[MQTT-4.7.3-1] - %s invalid TOPIC sent in PUBLISH message,"
                                " closing connection", cid)  # fmt: skip
            return False
        if "#" in topic or "+" in topic:
            self.logger.warning("[MQTT-3.3.2-2] - %s invalid TOPIC sent in PUBLISH message,"
                                " closing connection", cid)  # fmt: skip
            return False
        if topic.startswith("$"):
            self.logger.warning("[MQTT-4.7.2-1] - %s cannot use a topic with a leading $"
                                " character.", cid)  # fmt: skip
            return False
        if not await self._topic_filtering(client_session, topic=topic, action=Action.PUBLISH):
            self.logger.info("%s not allowed to publish to TOPIC %s.", cid, topic)
            return True
        s = self.front.sessions.get(cid)
        if s is not None:
            self.front.published_soon(s, message)
        await self._broadcast_message(client_session, topic, message.data)
        if message.publish_packet and message.publish_packet.retain_flag:
            await self.retain_message(client_session, topic, message.data, message.qos)
        return True

    async def _broadcast_message(self, session, topic, data, force_qos=None):
        # amqtt queues every message for its broadcast task, which then finds no matching
        # subscription for most of the devices' messages (telemetry) and does nothing.
        subs = self._subscriptions
        for flt in subs:
            if subs[flt] and self._matches(topic, flt):
                return await super()._broadcast_message(session, topic, data, force_qos)
        return None
