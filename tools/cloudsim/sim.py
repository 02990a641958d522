"""CloudSim: the emulator as one object tests and the command line drive.

It runs its own asyncio loop in a background thread, so that a synchronous test can start
it, register devices, inject writes and wait for values, while the device under test (a
subprocess or another loop) talks to it over loopback.

    sim = CloudSim(workdir)               # test PKI and registry live in workdir
    sim.start()                           # free ports unless given
    dev = sim.add_device("dev-1", secret="s3cret")
    ...device connects to 127.0.0.1:sim.ports["password"] ...
    sim.wait_for_value(dev.thing_id, "temperature", timeout=10)
    sim.write(dev.thing_id, "led", True)
    sim.stop()
"""

import asyncio
import logging
import threading
import uuid
from pathlib import Path

from . import broker as broker_mod
from . import codec, pki
from .cloud import Cloud
from .knobs import Knobs
from .store import Store

log = logging.getLogger("cloudsim")

DEFAULT_PORTS = {"password": 8884, "certificate": 8885, "http": 8080}


class CloudSim:
    def __init__(
        self,
        workdir,
        host="127.0.0.1",
        password_port=0,
        certificate_port=0,
        http_port=0,
        plain_port=None,
        dashboard=True,
        store=None,
        server_names=(),
    ):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.server_names = tuple(server_names)  # beyond localhost/127.0.0.1 (a LAN board)
        self.ca = pki.TestCA(self.workdir / "pki")
        self.store = store or Store()
        self.knobs = Knobs()
        self._wanted = {"password": password_port, "certificate": certificate_port}
        if plain_port is not None:
            self._wanted["plain"] = plain_port
        self._http_wanted = http_port if dashboard else None
        self.ports = {}
        self.loop = None
        self._thread = None
        self._broker = None
        self._http = None
        self.cloud = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, timeout=15):
        """Start the loop thread, the broker and the dashboard; returns self."""
        if self._thread is not None:
            raise RuntimeError("already running")
        ready = threading.Event()
        failure = []

        def main():
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
            try:
                self.loop.run_until_complete(self._astart())
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                ready.set()
                return
            ready.set()
            self.loop.run_forever()
            self.loop.run_until_complete(self._astop())
            self.loop.close()

        self._thread = threading.Thread(target=main, name="cloudsim", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("cloudsim did not start within %s s" % timeout)
        if failure:
            self._thread.join(5)
            self._thread = None
            raise failure[0]
        return self

    def stop(self, timeout=15):
        if self._thread is None:
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        self._thread = None

    def restart(self):
        """Stop and start on the same ports with the same registry and values."""
        ports = dict(self.ports)
        self.stop()
        self._wanted = {k: v for k, v in ports.items() if k != "http"}
        if self._http_wanted is not None:
            self._http_wanted = ports.get("http", 0)
        return self.start()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    async def _astart(self):
        cert, key = self.ca.server_files(self.server_names)
        contexts = {
            "password": broker_mod.server_context(cert, key),
            "certificate": broker_mod.server_context(cert, key, self.ca.cert_pem_path),
            "plain": None,
        }
        self.cloud = Cloud(self.store, self.knobs, self._apublish)
        self._broker = broker_mod.CloudBroker(
            self.store, self.knobs, self.cloud, contexts, self.host, self._wanted
        )
        await self._broker.start()
        self.ports = dict(self._broker.ports)
        if self._http_wanted is not None:
            from .dashboard import Dashboard

            self._http = Dashboard(self, self.host, self._http_wanted)
            await self._http.start()
            self.ports["http"] = self._http.port
        self.store.event(None, "started", "ports %s" % self.ports)

    async def _astop(self):
        if self._http is not None:
            await self._http.stop()
            self._http = None
        if self._broker is not None:
            await self._broker.stop()
            self._broker = None
        self.store.event(None, "stopped")

    async def _apublish(self, topic, payload):
        await self._broker.publish(topic, payload)

    def call(self, coro_fn, *args, timeout=10):
        """Run coro_fn(*args) on the emulator's loop from another thread; return its result."""
        if self.loop is None or self._thread is None:
            raise RuntimeError("cloudsim is not running")
        fut = asyncio.run_coroutine_threadsafe(coro_fn(*args), self.loop)
        return fut.result(timeout)

    def _on_loop(self, fn, *args):
        async def run():
            return fn(*args)

        return self.call(run)

    @property
    def dashboard_url(self):
        return "http://%s:%d/" % (self.host, self.ports["http"]) if "http" in self.ports else None

    # -- registry -------------------------------------------------------------------------------

    def add_device(self, device_id=None, secret=None, thing_id=None, certificate=False):
        """Register a device. secret: password auth; certificate=True: issue a client
        certificate from the test CA (files under workdir/pki/devices/{id}/, see .files()).
        thing_id None: a new thing; "" = not linked to a thing."""
        device_id = device_id or str(uuid.uuid4())
        fingerprint = None
        if certificate:
            files = self.ca.device_files(device_id)
            fingerprint = pki.fingerprint(files["cert_der"].read_bytes())
        return self.store.add_device(device_id, secret, thing_id, fingerprint)

    def device_files(self, device_id):
        return self.ca.device_files(device_id)

    def device(self, device_id):
        return self.store.devices[device_id]

    def link(self, device_id, thing_id, notify=True):
        """Link a device to a thing ("" unlinks). notify: tell a connected device at once
        with a ThingUpdate on /c/dw (if it listens there); otherwise its next sync will."""
        dev = self.store.devices[device_id]
        with self.store.lock:
            dev.thing_id = thing_id
            if thing_id:
                self.store.thing(thing_id)
        self.store.event(device_id, "link", "thing %r" % thing_id)
        if notify and dev.connected and "/a/d/%s/c/dw" % device_id in dev.subscriptions:
            self.send_thing_update(device_id)

    # -- actions ----------------------------------------------------------------------------------

    def write(self, thing_id, name, value):
        """Inject a dashboard write on /a/t/{thing}/e/i; a dict value is a composite."""
        self.call(self.cloud.inject_write, thing_id, codec.flatten(name, value))

    def set_values(self, thing_id, values):
        """Set stored last values directly (what getLastValues will return)."""
        records = []
        for name, value in values.items():
            records += [{"name": n, "value": v, "t": None} for n, v in codec.flatten(name, value)]
        self.store.record_values(thing_id, records)

    def drop(self, device_id):
        """Cut the device's connection (TCP abort)."""
        return self._on_loop(self._broker.drop, device_id)

    def detach(self, device_id):
        self.call(self.cloud.send_detach, self.device(device_id))

    def send_timezone(self, device_id, offset, until):
        self._on_loop(self.cloud.send_timezone, self.device(device_id), offset, until)

    def send_thing_update(self, device_id):
        self._on_loop(self.cloud.send_thing_update, self.device(device_id))

    def publish_raw(self, topic, payload):
        """Anything on any topic (malformed-message fault tests)."""
        self.call(self._apublish, topic, bytes(payload))

    def set_knobs(self, **changes):
        self.knobs.update(**changes)

    # -- queries ----------------------------------------------------------------------------

    def values(self, thing_id):
        with self.store.lock:
            return dict(self.store.thing(thing_id).values)

    def history(self, thing_id, name):
        with self.store.lock:
            return list(self.store.thing(thing_id).history.get(name, ()))

    def events(self, device_id=None, kind=None):
        with self.store.lock:
            return [
                e
                for e in self.store.events
                if (device_id is None or e["device"] == device_id)
                and (kind is None or e["kind"] == kind)
            ]

    def wait_for_value(self, thing_id, name, value=None, timeout=10, pred=None, since=None):
        """Wait until `name` holds `value` (or pred(value) is true, or, with neither, any
        value) with an arrival time after `since`; returns the value."""
        th = self.store.thing(thing_id)

        def check():
            if name not in th.values:
                return False
            if since is not None and th.updated.get(name, 0) <= since:
                return False
            v = th.values[name]
            if pred is not None:
                return pred(v) and (v,)
            if value is not None:
                return v == value and (v,)
            return (v,)

        try:
            return self.store.wait(check, timeout)[0]
        except TimeoutError:
            raise TimeoutError(
                "%s on thing %s: wanted %r, have %r after %s s"
                % (name, thing_id, value, th.values.get(name), timeout)
            )

    def wait_connected(self, device_id, connected=True, timeout=10):
        dev = self.store.devices[device_id]
        self.store.wait(lambda: dev.connected == connected, timeout)
        return dev

    def wait_event(self, device_id, kind, text=None, timeout=10, after=0):
        """Wait for an event (see store.event kinds) whose text contains `text`."""

        def check():
            for e in self.store.events:
                if e["seq"] > after and e["device"] == device_id and e["kind"] == kind:
                    if text is None or text in e["text"]:
                        return e
            return None

        return self.store.wait(check, timeout)

    def last_seq(self):
        with self.store.lock:
            return self.store.events[-1]["seq"] if self.store.events else 0
