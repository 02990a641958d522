"""The Arduino IoT Cloud's side of the conversation (protocols.md §1.3, §1.7).

Reacts to what devices do on the broker (connect, subscribe, publish) and answers like the
cloud: the thing id (legacy record or ThingUpdate), last values (shadow reply or
LastValuesUpdate), timezone; stores every value pushed on /a/t/{thing}/e/o.
Runs on the broker's event loop. Knobs (knobs.py) make the replies late, missing or broken.
"""

import asyncio
import time

from . import codec


class Cloud:
    def __init__(self, store, knobs, publish):
        self.store = store
        self.knobs = knobs
        self._publish = publish  # async (topic, payload) -> None
        self._tasks = set()

    # -- replies ---------------------------------------------------------------------------

    def _reply(self, kind, dev, topic, payload):
        """Send a reply as the knobs allow: maybe late, maybe never, maybe broken."""
        if kind in self.knobs.mute:
            self.store.event(dev.id, "muted", "%s not sent (knob)" % kind)
            return
        if kind in self.knobs.malformed:
            payload = payload[: max(1, len(payload) // 2)]
            self.store.event(
                dev.id, "malformed", "%s truncated to %d bytes (knob)" % (kind, len(payload))
            )
        delay = self.knobs.reply_delay_s

        async def send():
            if delay:
                await asyncio.sleep(delay)
            await self._publish(topic, payload)
            self.store.event(dev.id, "sent", "%s -> %s" % (kind, topic))

        task = asyncio.ensure_future(send())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def last_values_pack(self, thing_id):
        th = self.store.thing(thing_id)
        with self.store.lock:
            values = [(n, v) for n, v in th.values.items() if v is not None]
            values += [("tz_offset", th.tz_offset), ("tz_dst_until", th.tz_dst_until)]
        return codec.encode_senml(values)

    def send_thing_id(self, dev):
        payload = codec.encode_senml([("thing_id", dev.thing_id)])
        self._reply("thing_id", dev, "/a/d/%s/e/i" % dev.id, payload)

    def send_thing_update(self, dev):
        payload = codec.encode_command(codec.THING_UPDATE, [dev.thing_id])
        self._reply("thing_update", dev, "/a/d/%s/c/dw" % dev.id, payload)

    def send_last_values(self, dev, legacy):
        pack = self.last_values_pack(dev.thing_id)
        if legacy:
            self._reply("last_values", dev, "/a/t/%s/shadow/i" % dev.thing_id, pack)
        else:
            payload = codec.encode_command(codec.LAST_VALUES_UPDATE, [pack])
            self._reply("last_values", dev, "/a/d/%s/c/dw" % dev.id, payload)

    def send_timezone(self, dev, offset, until):
        th = self.store.thing(dev.thing_id) if dev.thing_id else None
        if th is not None:
            th.tz_offset, th.tz_dst_until = offset, until
        payload = codec.encode_command(codec.TIMEZONE_DOWN, [offset, until])
        self._reply("timezone", dev, "/a/d/%s/c/dw" % dev.id, payload)

    async def send_detach(self, dev):
        """ThingDetach: the thing is unlinked; the device must drop its thing topics."""
        old = dev.thing_id
        await self._publish(
            "/a/d/%s/c/dw" % dev.id, codec.encode_command(codec.THING_DETACH, [old])
        )
        with self.store.lock:
            dev.thing_id = ""
        self.store.event(dev.id, "detach", "thing %s detached" % old)

    async def inject_write(self, thing_id, values):
        """A dashboard/automation write: values is [(name, value)], already flattened."""
        await self._publish("/a/t/%s/e/i" % thing_id, codec.encode_senml(values))
        # The cloud keeps what was written: the dashboard shows it, last values return it.
        self.store.record_values(thing_id, [{"name": n, "value": v, "t": None} for n, v in values])
        dev = self.store.device_for_thing(thing_id)
        self.store.event(
            dev.id if dev else None,
            "write",
            ", ".join("%s=%r" % (n, v) for n, v in values),
        )

    # -- events from the broker ---------------------------------------------------------------

    def on_connected(self, dev, auth, keepalive):
        with self.store.lock:
            dev.connected = True
            dev.auth = auth
            dev.keepalive = keepalive
            dev.connects += 1
            dev.subscriptions = set()
        self.store.event(dev.id, "connected", "%s auth, keepalive %s s" % (auth, keepalive))

    def on_disconnected(self, dev):
        with self.store.lock:
            dev.connected = False
            dev.subscriptions = set()
        self.store.event(dev.id, "disconnected")

    def on_subscribed(self, dev, topic):
        with self.store.lock:
            dev.subscriptions.add(topic)
        self.store.event(dev.id, "subscribed", topic)
        if topic == "/a/d/%s/e/i" % dev.id:
            self.send_thing_id(dev)

    def on_unsubscribed(self, dev, topic):
        with self.store.lock:
            dev.subscriptions.discard(topic)
        self.store.event(dev.id, "unsubscribed", topic)

    def on_message(self, dev, topic, payload):
        try:
            self._dispatch(dev, topic, bytes(payload))
        except codec.PayloadError as exc:
            self.store.event(dev.id, "bad-payload", "%s: %s (%s)" % (topic, exc, payload.hex()))

    def _dispatch(self, dev, topic, payload):
        if topic == "/a/d/%s/c/up" % dev.id:
            self._command(dev, payload)
        elif dev.thing_id and topic == "/a/t/%s/e/o" % dev.thing_id:
            records = codec.decode_senml(payload)
            self.store.record_values(dev.thing_id, records, time.time())
            self.store.event(
                dev.id, "values", ", ".join("%s=%r" % (r["name"], r["value"]) for r in records)
            )
        elif dev.thing_id and topic == "/a/t/%s/shadow/o" % dev.thing_id:
            if codec.is_get_last_values(payload):
                self.store.event(dev.id, "command", "getLastValues")
                self.send_last_values(dev, legacy=True)
            else:
                raise codec.PayloadError("unknown shadow request")
        elif topic == "/a/d/%s/e/o" % dev.id:
            self.store.event(dev.id, "device-props", str(codec.decode_senml(payload)))
        else:
            self.store.event(dev.id, "ignored", topic)

    def _command(self, dev, payload):
        tag, params = codec.decode_command(payload)
        name = codec.COMMAND_NAMES.get(tag, "0x%06x" % tag)
        self.store.event(dev.id, "command", "%s %r" % (name, params))
        if tag == codec.DEVICE_BEGIN:
            with self.store.lock:
                dev.lib_version = params[0] if params else None
            # Only a device speaking the command protocol listens on /c/dw (§1.7 item 4).
            if "/a/d/%s/c/dw" % dev.id in dev.subscriptions:
                self.send_thing_update(dev)
        elif tag == codec.THING_BEGIN:
            self.send_thing_update(dev)
        elif tag == codec.LAST_VALUES_BEGIN:
            if dev.thing_id:
                self.send_last_values(dev, legacy=False)
        elif tag == codec.TIMEZONE_UP:
            th = self.store.thing(dev.thing_id) if dev.thing_id else None
            if th is not None:
                self.send_timezone(dev, th.tz_offset, th.tz_dst_until)
