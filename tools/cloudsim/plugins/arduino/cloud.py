"""The Arduino IoT Cloud's side of the conversation (protocols.md §1.3, §1.7).

Reacts to what devices do on the broker (subscribe, publish) and answers like the cloud:
the thing id (legacy record or ThingUpdate), last values (shadow reply or
LastValuesUpdate), timezone; stores every value pushed on /a/t/{thing}/e/o. Runs on the
emulator's loop; replies go through front.reply(), so the common knobs make them late,
missing or broken.
"""

import time

from . import codec


class Cloud:
    def __init__(self, store, front):
        self.store = store
        self.front = front

    def _reply(self, kind, dev, topic, payload):
        self.front.reply(kind, dev.id, topic, payload)

    # -- replies ---------------------------------------------------------------------------

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
        await self.front.publish(
            "/a/d/%s/c/dw" % dev.id, codec.encode_command(codec.THING_DETACH, [old])
        )
        with self.store.lock:
            dev.thing_id = ""
        self.store.event(dev.id, "detach", "thing %s detached" % old)

    async def inject_write(self, thing_id, values):
        """A dashboard/automation write: values is [(name, value)], already flattened."""
        await self.front.publish("/a/t/%s/e/i" % thing_id, codec.encode_senml(values))
        # The cloud keeps what was written: the dashboard shows it, last values return it.
        self.store.record_values(thing_id, [{"name": n, "value": v, "t": None} for n, v in values])
        dev = self.store.device_for_thing(thing_id)
        self.store.event(
            dev.id if dev else None,
            "write",
            ", ".join("%s=%r" % (n, v) for n, v in values),
        )

    # -- what devices do ------------------------------------------------------------------------

    def on_subscribed(self, dev, topic):
        if topic == "/a/d/%s/e/i" % dev.id:
            self.send_thing_id(dev)

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
