"""Devices of every cloud, and the event log: the front's shared state.

Written from the emulator's event loop, read from any thread (tests, the dashboard): every
access goes through one lock, and waiters sleep on a condition notified at each change.
"""

import collections
import threading
import time

EVENTS_LEN = 1000


class Device:
    """What the front knows of any device; a plug-in subclasses it with its own fields
    (and extends as_dict for the dashboard)."""

    def __init__(self, device_id, cloud):
        self.id = device_id
        self.cloud = cloud
        self.connected = False
        self.auth = None  # how the current session authenticated ("password", ...)
        self.keepalive = None
        self.connects = 0
        self.subscriptions = set()

    def as_dict(self):
        return {
            "id": self.id,
            "cloud": self.cloud,
            "connected": self.connected,
            "auth": self.auth,
            "keepalive": self.keepalive,
            "connects": self.connects,
            "subscriptions": sorted(self.subscriptions),
        }


class Registry:
    def __init__(self):
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.clouds = {}  # cloud name -> {device id -> Device}
        self.events = collections.deque(maxlen=EVENTS_LEN)
        self._seq = 0

    def devices(self, cloud):
        """The live {id: Device} dict of one cloud (created empty on first use)."""
        with self.lock:
            return self.clouds.setdefault(cloud, {})

    def add(self, device):
        with self.lock:
            self.devices(device.cloud)[device.id] = device
            self.notify()
        return device

    def find(self, device_id, cloud=None):
        """The device with this id (in `cloud`, or in any cloud); None if unknown."""
        with self.lock:
            for name, devs in self.clouds.items():
                if (cloud is None or name == cloud) and device_id in devs:
                    return devs[device_id]
        return None

    def all(self):
        with self.lock:
            return [d for devs in self.clouds.values() for d in devs.values()]

    def event(self, device_id, kind, text="", cloud=None):
        with self.lock:
            self._seq += 1
            self.events.append(
                {
                    "seq": self._seq,
                    "t": time.time(),
                    "cloud": cloud,
                    "device": device_id,
                    "kind": kind,
                    "text": text,
                }
            )
            self.notify()

    def last_seq(self):
        with self.lock:
            return self._seq

    def select(self, device_id=None, kind=None, cloud=None):
        with self.lock:
            return [
                e
                for e in self.events
                if (device_id is None or e["device"] == device_id)
                and (kind is None or e["kind"] == kind)
                and (cloud is None or e["cloud"] == cloud)
            ]

    def notify(self):
        with self.lock:
            self.changed.notify_all()

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

    def snapshot(self):
        """Devices of every cloud and the recent events, as plain JSON-able data."""
        with self.lock:
            return {
                "devices": [d.as_dict() for d in self.all()],
                "events": list(self.events)[-200:],
            }
