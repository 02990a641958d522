"""The front: one emulator process hosting any number of cloud plug-ins.

It runs its own asyncio loop in a background thread, so that a synchronous test can start
it, drive the plug-ins and wait for what devices do, while the device under test (a
subprocess or another loop) talks to it over loopback. See core/plugin.py for what a
plug-in provides and which of the front's services it may use.
"""

import asyncio
import inspect
import logging
import threading
from pathlib import Path

from .. import pki
from . import dashboard
from .broker import MqttFront, server_context
from .http import HttpServer
from .knobs import Knobs
from .registry import Registry

log = logging.getLogger("cloudsim")


class Front:
    def __init__(
        self,
        workdir,
        plugins,
        host="127.0.0.1",
        ports=None,
        http_port=0,
        dashboard=True,
        server_names=(),
        registry=None,
    ):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.server_names = tuple(server_names)  # beyond localhost/127.0.0.1 (a LAN board)
        self.ca = pki.TestCA(self.workdir / "pki")
        self.registry = registry or Registry()
        self.knobs = Knobs()
        self.plugins = list(plugins)
        self.clouds = {}
        self._kind_cloud = {}  # reply kind -> cloud name, for the knob events
        self._wanted = dict(ports or {})  # listener name -> port (0 = any free port)
        self._http_wanted = http_port if dashboard else None
        self._trusted = {}  # listener name -> [cadata] added with trust()
        self._contexts = {}
        self.ports = {}
        self.loop = None
        self._thread = None
        self.mqtt = None
        self._http = []
        self._tasks = set()
        for plugin in self.plugins:
            if plugin.name in self.clouds:
                raise ValueError("two plug-ins named %r" % plugin.name)
            self.clouds[plugin.name] = plugin
            self.knobs.add_reply_kinds(plugin.reply_kinds)
            self._kind_cloud.update((k, plugin.name) for k in plugin.reply_kinds)
            plugin.attach(self)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, timeout=15):
        """Start the loop thread, the listeners and the plug-ins; returns self."""
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
                self.loop.run_until_complete(self._astop())
                self.loop.close()
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
        """Stop and start on the same ports, keeping the registry and what plug-ins hold."""
        ports = dict(self.ports)
        self.stop()
        self._wanted = {k: v for k, v in ports.items() if k != "http"}
        if self._http_wanted is not None:
            self._http_wanted = ports.get("http", 0)
        return self.start()

    def restart_broker(self, timeout=15):
        """Stop and start only the broker and its MQTT listeners, on the same ports; the
        HTTP(S) servers stay up (an MQTT broker restart while a cloud's REST API keeps
        serving). Every MQTT connection and session is lost, as with restart()."""

        async def run():
            old = self.mqtt
            listeners = [(li, pl, ctx, self.ports[li.name]) for li, pl, ctx, _ in old.listeners]
            await old.stop()
            self.mqtt = MqttFront(self, listeners)
            await self.mqtt.start()
            self.event(None, "broker-restarted", "ports %s" % self.mqtt.ports)

        self.call(run, timeout=timeout)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    async def _astart(self):
        wanted = [(plugin, li) for plugin in self.plugins for li in plugin.listeners()]
        hosts = [li.host for _, li in wanted if li.host and li.host != self.host]
        cert, key = self.ca.server_files(tuple(self.server_names) + tuple(hosts))
        mqtt, http, routes = [], [], {"http": dashboard.routes(self)}
        for plugin, li in wanted:
            if li.name in self._contexts or li.name == "http":
                raise ValueError("two listeners named %r" % li.name)
            ctx = server_context(cert, key, li.tls, self.ca.cert_pem_path) if li.tls else None
            for cadata in self._trusted.get(li.name, ()):
                ctx.load_verify_locations(cadata=cadata)
            self._contexts[li.name] = ctx
            port = self._wanted.get(li.name, li.port)
            if li.kind == "mqtt":
                mqtt.append((li, plugin, ctx, port))
            else:
                http.append((li, ctx, port))
                routes[li.name] = []
        for plugin in self.plugins:
            for route in plugin.routes():
                if route.listener not in routes:
                    raise ValueError(
                        "%s: route %s on unknown listener %r"
                        % (plugin.name, route.path, route.listener)
                    )
                routes[route.listener].append(route)
        self.mqtt = MqttFront(self, mqtt)
        await self.mqtt.start()
        self.ports = dict(self.mqtt.ports)
        for li, ctx, port in http:
            server = HttpServer(li.name, li.host or self.host, port, ctx, routes[li.name])
            await server.start()
            self._http.append(server)
            self.ports[li.name] = server.port
        if self._http_wanted is not None:
            server = HttpServer(
                "http", self.host, self._http_wanted, None, routes["http"], json_posts_only=True
            )
            await server.start()
            self._http.append(server)
            self.ports["http"] = server.port
        for plugin in self.plugins:
            await plugin.start()
        self.event(None, "started", "ports %s" % self.ports)

    async def _astop(self):
        for plugin in self.plugins:
            try:
                await plugin.stop()
            except Exception:
                log.exception("%s stop", plugin.name)
        for server in self._http:
            await server.stop()
        self._http = []
        if self.mqtt is not None:
            await self.mqtt.stop()
            self.mqtt = None
        self._contexts = {}
        for task in list(self._tasks):
            task.cancel()
        self.event(None, "stopped")

    # -- services for plug-ins (on the loop) ------------------------------------------------

    async def publish(self, topic, payload, qos=None, retain=False, to=None, unsubscribed=False):
        """To every device subscribed (and allowed) to topic; qos None: as subscribed.
        to: one Session only (a reply that belongs to one connection, like Azure's
        $iothub/twin/res/...), if it is still current and subscribed (or, with
        unsubscribed=True, even if not); returns True when sent (at QoS 1: when
        acknowledged)."""
        if to is not None:
            return await self.mqtt.publish_to(to, topic, payload, qos, unsubscribed)
        await self.mqtt.publish(topic, payload, qos, retain)
        return True

    def reply(self, kind, device_id, topic, payload, qos=None, to=None, unsubscribed=False):
        """Publish a reply of a declared kind as the knobs allow: maybe late, maybe never,
        maybe truncated. Returns at once (the send is a task)."""
        cloud = self._kind_cloud.get(kind)
        if kind in self.knobs.mute:
            self.event(device_id, "muted", "%s not sent (knob)" % kind, cloud)
            return
        if kind in self.knobs.malformed:
            payload = payload[: max(1, len(payload) // 2)]
            self.event(
                device_id,
                "malformed",
                "%s truncated to %d bytes (knob)" % (kind, len(payload)),
                cloud,
            )
        delay = self.knobs.reply_delay_s

        async def send():
            if delay:
                await asyncio.sleep(delay)
            if await self.publish(topic, payload, qos, to=to, unsubscribed=unsubscribed):
                self.event(device_id, "sent", "%s -> %s" % (kind, topic), cloud)
            else:
                self.event(
                    device_id, "unsent", "%s -> %s (gone or not subscribed)" % (kind, topic), cloud
                )

        self.spawn(send())

    def spawn(self, coro):
        """A task the front keeps (and cancels at stop)."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def event(self, device_id, kind, text="", cloud=None):
        self.registry.event(device_id, kind, text, cloud)

    def trust(self, listener, cert):
        """Accept client certificates issued by (or equal to, if self-signed) `cert` (PEM
        str or DER bytes) on a mutual-TLS listener, from now on and after restarts."""
        cadata = cert.decode() if isinstance(cert, bytes) and cert[:1] == b"-" else cert
        self._trusted.setdefault(listener, []).append(cadata)
        ctx = self._contexts.get(listener)
        if ctx is not None:
            if self.loop is not None and threading.current_thread() is not self._thread:
                self.on_loop(ctx.load_verify_locations, None, None, cadata)
            else:
                ctx.load_verify_locations(cadata=cadata)

    def drop(self, device_id, cloud=None):
        """Cut the device's connection(s) (TCP abort); from any thread."""
        if threading.current_thread() is self._thread:
            return self.mqtt.drop(device_id, cloud)
        return self.on_loop(lambda: self.mqtt.drop(device_id, cloud))

    # -- from a test's thread ----------------------------------------------------------------

    def call(self, coro_fn, *args, timeout=10):
        """Run coro_fn(*args) on the emulator's loop from another thread; return its result."""
        if self.loop is None or self._thread is None:
            raise RuntimeError("cloudsim is not running")
        fut = asyncio.run_coroutine_threadsafe(coro_fn(*args), self.loop)
        return fut.result(timeout)

    def on_loop(self, fn, *args, timeout=10):
        """Run fn(*args) on the emulator's loop (awaiting it if it returns an awaitable)."""

        async def run():
            result = fn(*args)
            return (await result) if inspect.isawaitable(result) else result

        return self.call(run, timeout=timeout)

    @property
    def dashboard_url(self):
        return "http://%s:%d/" % (self.host, self.ports["http"]) if "http" in self.ports else None

    def device(self, device_id, cloud=None):
        dev = self.registry.find(device_id, cloud)
        if dev is None:
            raise KeyError(device_id)
        return dev

    def events(self, device_id=None, kind=None, cloud=None):
        return self.registry.select(device_id, kind, cloud)

    def last_seq(self):
        return self.registry.last_seq()

    def wait_connected(self, device_id, connected=True, timeout=10, cloud=None):
        dev = self.device(device_id, cloud)
        self.registry.wait(lambda: dev.connected == connected, timeout)
        return dev

    def wait_event(self, device_id, kind, text=None, timeout=10, after=0):
        """Wait for an event (see docs/emulator.md for kinds) whose text contains `text`."""

        def check():
            for e in self.registry.events:
                if e["seq"] > after and e["device"] == device_id and e["kind"] == kind:
                    if text is None or text in e["text"]:
                        return e
            return None

        return self.registry.wait(check, timeout)
