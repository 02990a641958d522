"""What the emulated Arduino cloud knows: its devices, things, last values and history.

Shares the front's registry (its lock, its event log, the "arduino" device dict), so a
waiter on the registry wakes on a value change too. The command-line emulator keeps this
store in registry.json between runs.
"""

import collections
import json
import os
import time
import uuid

from ...core.registry import Device as BaseDevice
from ...core.registry import Registry

CLOUD = "arduino"
HISTORY_LEN = 500


class Device(BaseDevice):
    def __init__(self, device_id, secret=None, thing_id="", cert_fingerprint=None):
        super().__init__(device_id, CLOUD)
        self.secret = secret
        self.thing_id = thing_id  # "" = registered but not linked to a thing
        self.cert_fingerprint = cert_fingerprint
        self.lib_version = None

    def as_dict(self):
        out = super().as_dict()
        out.update(
            thing_id=self.thing_id,
            lib_version=self.lib_version,
            has_secret=self.secret is not None,
            has_certificate=self.cert_fingerprint is not None,
        )
        return out


class Thing:
    def __init__(self, thing_id):
        self.id = thing_id
        self.values = {}  # name -> last value
        self.updated = {}  # name -> arrival time (unix s)
        self.history = {}  # name -> deque of (arrival time, value)
        self.tz_offset = 0
        self.tz_dst_until = 0


class Store:
    def __init__(self, registry=None):
        self.registry = registry or Registry()
        self.lock = self.registry.lock
        self.changed = self.registry.changed
        self.devices = self.registry.devices(CLOUD)  # the live dict
        self.things = {}

    @property
    def events(self):
        return self.registry.events

    # -- changes (any thread) --------------------------------------------------------------

    def add_device(self, device_id, secret=None, thing_id=None, cert_fingerprint=None):
        """Register a device; thing_id None creates a new thing, "" leaves it unlinked."""
        with self.lock:
            if thing_id is None:
                old = self.devices.get(device_id)
                thing_id = old.thing_id if old and old.thing_id else str(uuid.uuid4())
            dev = self.devices.get(device_id)
            if dev is None:
                dev = self.registry.add(Device(device_id))
            if secret is not None:
                dev.secret = secret
            if cert_fingerprint is not None:
                dev.cert_fingerprint = cert_fingerprint
            dev.thing_id = thing_id
            if thing_id:
                self.thing(thing_id)
            self.registry.notify()
            return dev

    def thing(self, thing_id):
        with self.lock:
            th = self.things.get(thing_id)
            if th is None:
                th = self.things[thing_id] = Thing(thing_id)
            return th

    def record_values(self, thing_id, records, now=None):
        """Store decoded SenML records [{name, value, t}] arriving now."""
        now = time.time() if now is None else now
        with self.lock:
            th = self.thing(thing_id)
            for rec in records:
                name, value = rec["name"], rec["value"]
                th.values[name] = value
                th.updated[name] = now
                hist = th.history.get(name)
                if hist is None:
                    hist = th.history[name] = collections.deque(maxlen=HISTORY_LEN)
                hist.append((now, value))
            self.registry.notify()

    def event(self, device_id, kind, text=""):
        self.registry.event(device_id, kind, text, CLOUD)

    # -- queries -----------------------------------------------------------------------------

    def device_for_thing(self, thing_id):
        with self.lock:
            for dev in self.devices.values():
                if dev.thing_id == thing_id:
                    return dev
            return None

    def wait(self, predicate, timeout):
        return self.registry.wait(predicate, timeout)

    def things_snapshot(self, history=True):
        """Things as plain JSON-able data (the dashboard's view)."""
        with self.lock:
            return {
                th.id: {
                    "id": th.id,
                    "values": {n: _jsonable(v) for n, v in th.values.items()},
                    "updated": dict(th.updated),
                    "history": {
                        n: [[t, v] for t, v in h if _is_number(v)]
                        for n, h in th.history.items()
                        if history
                    },
                    "tz_offset": th.tz_offset,
                    "tz_dst_until": th.tz_dst_until,
                }
                for th in self.things.values()
            }

    # -- persistence ------------------------------------------------------------------------

    def save(self, path):
        with self.lock:
            data = {
                "devices": [
                    {
                        "id": d.id,
                        "secret": d.secret,
                        "thing_id": d.thing_id,
                        "cert_fingerprint": d.cert_fingerprint,
                    }
                    for d in self.devices.values()
                ],
                "values": {
                    th.id: {n: _jsonable(v) for n, v in th.values.items()}
                    for th in self.things.values()
                },
            }
        tmp = str(path) + ".tmp"
        # The registry holds device secrets: readable by its owner only, from the start.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, path)

    def load(self, path):
        with open(path) as f:
            data = json.load(f)
        for d in data.get("devices", []):
            self.add_device(
                d["id"], d.get("secret"), d.get("thing_id", ""), d.get("cert_fingerprint")
            )
        with self.lock:
            for thing_id, values in data.get("values", {}).items():
                self.thing(thing_id).values.update({n: _from_json(v) for n, v in values.items()})


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _from_json(v):
    if isinstance(v, dict) and set(v) == {"bytes"}:
        return bytes.fromhex(v["bytes"])
    return v


def _jsonable(v):
    if isinstance(v, (bytes, bytearray)):
        return {"bytes": bytes(v).hex()}
    return v
