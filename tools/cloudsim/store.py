"""What the emulated cloud knows: devices, things, last values and their history.

Written from the broker's event loop, read from any thread (tests, the dashboard): every
access goes through one lock, and waiters sleep on a condition notified at each change.
"""

import collections
import json
import os
import threading
import time
import uuid

HISTORY_LEN = 500
EVENTS_LEN = 1000


class Device:
    def __init__(self, device_id, secret=None, thing_id="", cert_fingerprint=None):
        self.id = device_id
        self.secret = secret
        self.thing_id = thing_id  # "" = registered but not linked to a thing
        self.cert_fingerprint = cert_fingerprint
        self.connected = False
        self.auth = None  # "password" / "certificate" while connected
        self.keepalive = None
        self.lib_version = None
        self.connects = 0
        self.subscriptions = set()

    def as_dict(self):
        return {
            "id": self.id,
            "thing_id": self.thing_id,
            "connected": self.connected,
            "auth": self.auth,
            "keepalive": self.keepalive,
            "lib_version": self.lib_version,
            "connects": self.connects,
            "subscriptions": sorted(self.subscriptions),
            "has_secret": self.secret is not None,
            "has_certificate": self.cert_fingerprint is not None,
        }


class Thing:
    def __init__(self, thing_id):
        self.id = thing_id
        self.values = {}  # name -> last value
        self.updated = {}  # name -> arrival time (unix s)
        self.history = {}  # name -> deque of (arrival time, value)
        self.tz_offset = 0
        self.tz_dst_until = 0


class Store:
    def __init__(self):
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.devices = {}
        self.things = {}
        self.events = collections.deque(maxlen=EVENTS_LEN)
        self._seq = 0

    # -- changes (any thread) --------------------------------------------------------------

    def add_device(self, device_id, secret=None, thing_id=None, cert_fingerprint=None):
        """Register a device; thing_id None creates a new thing, "" leaves it unlinked."""
        with self.lock:
            if thing_id is None:
                old = self.devices.get(device_id)
                thing_id = old.thing_id if old and old.thing_id else str(uuid.uuid4())
            dev = self.devices.get(device_id)
            if dev is None:
                dev = self.devices[device_id] = Device(device_id)
            if secret is not None:
                dev.secret = secret
            if cert_fingerprint is not None:
                dev.cert_fingerprint = cert_fingerprint
            dev.thing_id = thing_id
            if thing_id:
                self.thing(thing_id)
            self._notify()
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
            self._notify()

    def event(self, device_id, kind, text=""):
        with self.lock:
            self._seq += 1
            self.events.append(
                {
                    "seq": self._seq,
                    "t": time.time(),
                    "device": device_id,
                    "kind": kind,
                    "text": text,
                }
            )
            self._notify()

    def _notify(self):
        self.changed.notify_all()

    # -- queries -----------------------------------------------------------------------------

    def device_for_thing(self, thing_id):
        with self.lock:
            for dev in self.devices.values():
                if dev.thing_id == thing_id:
                    return dev
            return None

    def wait(self, predicate, timeout):
        """Wait until predicate() (called under the lock) is truthy; return it or raise."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                result = predicate()
                if result:
                    return result
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("condition not met within %.1f s" % timeout)
                self.changed.wait(left)

    def snapshot(self, history=True):
        """Everything as plain JSON-able data (the dashboard's view)."""
        with self.lock:
            things = {}
            for th in self.things.values():
                things[th.id] = {
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
            return {
                "devices": [d.as_dict() for d in self.devices.values()],
                "things": things,
                "events": list(self.events)[-200:],
            }

    # -- persistence (the command-line emulator keeps its registry between runs) ------------

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
