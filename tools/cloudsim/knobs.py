"""Failure knobs: make the emulated cloud misbehave on purpose, for fault tests.

Reply kinds: "thing_id" (legacy record on /a/d/{id}/e/i), "thing_update" (ThingUpdate on
/c/dw), "last_values" (shadow/i reply and LastValuesUpdate), "timezone" (TimezoneDown).
"""

REPLY_KINDS = ("thing_id", "thing_update", "last_values", "timezone")


class Knobs:
    def __init__(self):
        self.reply_delay_s = 0.0  # every cloud reply is sent this late
        self.mute = set()  # reply kinds never sent ("missing replies")
        self.malformed = set()  # reply kinds sent as truncated CBOR
        self.refuse_connect = False  # every CONNECT gets CONNACK 5

    def as_dict(self):
        return {
            "reply_delay_s": self.reply_delay_s,
            "mute": sorted(self.mute),
            "malformed": sorted(self.malformed),
            "refuse_connect": self.refuse_connect,
        }

    def update(self, **changes):
        for name, value in changes.items():
            if name == "reply_delay_s":
                self.reply_delay_s = float(value)
            elif name in ("mute", "malformed"):
                kinds = set(value)
                unknown = kinds - set(REPLY_KINDS)
                if unknown:
                    raise ValueError("unknown reply kinds: %s" % ", ".join(sorted(unknown)))
                setattr(self, name, kinds)
            elif name == "refuse_connect":
                self.refuse_connect = bool(value)
            else:
                raise ValueError("unknown knob %r" % name)
