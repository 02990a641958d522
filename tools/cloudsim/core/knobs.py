"""Failure knobs: make the emulated clouds misbehave on purpose, for fault tests.

Common to every cloud (the front applies them):
  reply_delay_s   every reply a plug-in sends through front.reply() goes out this late
  mute            reply kinds never sent ("missing replies")
  malformed       reply kinds sent truncated to half their length
  refuse_connect  every CONNECT gets CONNACK 5
Reply kinds are declared by the plug-ins (Plugin.reply_kinds). A plug-in adds knobs of its
own with declare(name, default, convert); they appear in as_dict(), the dashboard and
POST /api/knobs like the common ones. (Cutting a connection is an action, not a knob:
sim.drop(device_id).)
"""


class Knobs:
    def __init__(self):
        self.reply_delay_s = 0.0
        self.mute = set()
        self.malformed = set()
        self.refuse_connect = False
        self.reply_kinds = set()
        self._extra = {}  # name -> convert

    def add_reply_kinds(self, kinds):
        self.reply_kinds.update(kinds)

    def declare(self, name, default, convert):
        """A plug-in's own knob: knobs.<name>, set through update() with convert(value)."""
        if hasattr(self, name) and name not in self._extra:
            raise ValueError("knob %r exists" % name)
        self._extra[name] = convert
        setattr(self, name, default)

    def as_dict(self):
        out = {
            "reply_delay_s": self.reply_delay_s,
            "mute": sorted(self.mute),
            "malformed": sorted(self.malformed),
            "refuse_connect": self.refuse_connect,
        }
        for name in self._extra:
            out[name] = getattr(self, name)
        return out

    def update(self, **changes):
        for name, value in changes.items():
            if name == "reply_delay_s":
                self.reply_delay_s = float(value)
            elif name in ("mute", "malformed"):
                kinds = set(value)
                unknown = kinds - self.reply_kinds
                if unknown:
                    raise ValueError("unknown reply kinds: %s" % ", ".join(sorted(unknown)))
                setattr(self, name, kinds)
            elif name == "refuse_connect":
                self.refuse_connect = bool(value)
            elif name in self._extra:
                setattr(self, name, self._extra[name](value))
            else:
                raise ValueError("unknown knob %r" % name)
