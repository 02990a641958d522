"""CloudSim: the emulator as one object tests and the command line drive.

A core.Front with the Arduino plug-in loaded (and any other clouds asked for), plus the
Arduino-flavoured API the tests have always used:

    sim = CloudSim(workdir)               # test PKI and registry live in workdir
    sim.start()                           # free ports unless given
    dev = sim.add_device("dev-1", secret="s3cret")
    ...device connects to 127.0.0.1:sim.ports["password"] ...
    sim.wait_for_value(dev.thing_id, "temperature", timeout=10)
    sim.write(dev.thing_id, "led", True)
    sim.stop()

Other clouds: CloudSim(workdir, clouds=["arduino", "azure", MyPlugin()]); their own test
methods are on sim.clouds[name].
"""

import uuid

from . import pki
from .core.front import Front
from .plugins import load
from .plugins.arduino import ArduinoPlugin, codec
from .plugins.arduino.store import Store

DEFAULT_PORTS = {"password": 8884, "certificate": 8885, "http": 8080}


class CloudSim(Front):
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
        clouds=("arduino",),
        ports=None,
    ):
        self.store = store or Store()
        plugins = []
        for cloud in clouds:
            if cloud == "arduino":
                cloud = ArduinoPlugin(self.store, plain=plain_port is not None)
            elif isinstance(cloud, str):
                cloud = load(cloud)
            plugins.append(cloud)
        wanted = {"password": password_port, "certificate": certificate_port}
        if plain_port is not None:
            wanted["plain"] = plain_port
        wanted.update(ports or {})
        super().__init__(
            workdir,
            plugins,
            host=host,
            ports=wanted,
            http_port=http_port,
            dashboard=dashboard,
            server_names=server_names,
            registry=self.store.registry,
        )
        self.arduino = self.clouds.get("arduino")
        self.cloud = self.arduino.cloud if self.arduino else None

    # -- the Arduino cloud's registry ---------------------------------------------------------

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

    # -- Arduino actions ----------------------------------------------------------------------

    def write(self, thing_id, name, value):
        """Inject a dashboard write on /a/t/{thing}/e/i; a dict value is a composite."""
        self.call(self.cloud.inject_write, thing_id, codec.flatten(name, value))

    def set_values(self, thing_id, values):
        """Set stored last values directly (what getLastValues will return)."""
        records = []
        for name, value in values.items():
            records += [{"name": n, "value": v, "t": None} for n, v in codec.flatten(name, value)]
        self.store.record_values(thing_id, records)

    def detach(self, device_id):
        self.call(self.cloud.send_detach, self.store.devices[device_id])

    def send_timezone(self, device_id, offset, until):
        self.on_loop(self.cloud.send_timezone, self.store.devices[device_id], offset, until)

    def send_thing_update(self, device_id):
        self.on_loop(self.cloud.send_thing_update, self.store.devices[device_id])

    def publish_raw(self, topic, payload):
        """Anything on any topic (malformed-message fault tests)."""
        self.call(self.publish, topic, bytes(payload))

    def set_knobs(self, **changes):
        self.knobs.update(**changes)

    # -- Arduino queries ------------------------------------------------------------------------

    def values(self, thing_id):
        with self.store.lock:
            return dict(self.store.thing(thing_id).values)

    def history(self, thing_id, name):
        with self.store.lock:
            return list(self.store.thing(thing_id).history.get(name, ()))

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
