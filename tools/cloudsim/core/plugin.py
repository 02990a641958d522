"""The plug-in interface: what one cloud adds to the emulator's front (docs/emulator.md).

The front (this package) owns everything the clouds share: TLS listeners, reading CONNECT
and answering CONNACK, the broker (amqtt), topic ACL enforcement, the keepalive watchdog,
the device registry and event log, the common knobs, the HTTP(S) servers and the dashboard.
A plug-in says what is particular to its cloud, through the hooks of `Plugin` below.

Every hook runs on the emulator's event loop. A hook marked "may be async" may return an
awaitable, which the front awaits. A hook that raises is logged as an "error" event and
never takes the front down (an authenticate that raises refuses the CONNECT).
"""


class Listener:
    """A port the plug-in wants, opened by the front.

    name: unique across all plug-ins; the key of `sim.ports` (and of `ports=` overrides).
    kind: "mqtt" (the broker), "https"/"http" (the plug-in's routes).
    tls:  None (plain TCP), "server" (server certificate only), "mutual" (a client
          certificate is requested and, when sent, verified against the trusted CAs; when
          absent the plug-in decides, so the refusal is a CONNACK, not a TLS alert), or
          "mutual-required" (no verified client certificate, no handshake).
    port: the default port (0: any free port).
    host: the address to bind (None: the front's host). A loopback address of its own lets a
          cloud whose clients hard-code a port (Azure's SDK: 8883) listen there beside
          another; the front adds it to the server certificate's names.
    """

    def __init__(self, name, kind="mqtt", tls="server", port=0, host=None):
        if kind not in ("mqtt", "https", "http"):
            raise ValueError("listener kind %r" % kind)
        if tls not in (None, "server", "mutual", "mutual-required"):
            raise ValueError("listener tls %r" % tls)
        if (kind == "https" and tls is None) or (kind == "http" and tls is not None):
            raise ValueError("https needs tls, http none")
        self.name = name
        self.kind = kind
        self.tls = tls
        self.port = port
        self.host = host

    def __repr__(self):
        return "Listener(%r, %r, tls=%r)" % (self.name, self.kind, self.tls)


class Refuse(Exception):
    """Raised by authenticate(): the CONNECT gets CONNACK `code` and `reason` is logged
    (never put a secret in it). Codes (MQTT 3.1.1 §3.2.2.3): 2 identifier rejected,
    3 server unavailable, 4 bad user name or password, 5 not authorized."""

    def __init__(self, reason, code=5):
        super().__init__(reason)
        self.reason = reason
        self.code = code


class Acl:
    """Topic patterns (MQTT filter syntax, "+" and "#") one session may use.

    publish: topics the device may publish to (a publish elsewhere is dropped and logged);
    subscribe: filters it may subscribe to (a filter must lie inside one of the patterns, so
    exact patterns allow no wildcard subscription); it also only receives messages whose
    topic matches one of these, checked at delivery time (an ACL that shrinks takes effect
    at once, e.g. after an Arduino ThingDetach)."""

    def __init__(self, publish=(), subscribe=()):
        self.publish = tuple(publish)
        self.subscribe = tuple(subscribe)


class Route:
    """An HTTP route on one of the front's HTTP(S) listeners.

    path: "/v1/{realm}/agent/devices": each {name} matches one path segment, given to the
    handler as request.params["name"]. handler: async (Request) -> Response | dict | list |
    None (a dict/list is sent as JSON 200, None as {"ok": true}); raise HttpError to refuse.
    listener: a Listener name of kind http/https, or "http" (the dashboard's own port; POST
    bodies there must be JSON, a CSRF guard)."""

    def __init__(self, method, path, handler, listener="http"):
        self.method = method.upper()
        self.path = path
        self.handler = handler
        self.listener = listener
        self.parts = path.strip("/").split("/") if path.strip("/") else []

    def match(self, parts):
        """-> params dict when parts (the request path split on "/") fits, else None."""
        if len(parts) != len(self.parts):
            return None
        params = {}
        for want, got in zip(self.parts, parts):
            if want.startswith("{") and want.endswith("}"):
                if not got:
                    return None
                params[want[1:-1]] = got
            elif want != got:
                return None
        return params


class Plugin:
    """One cloud. Subclass it and override what the cloud needs; defaults refuse everyone.

    Attributes: `name` (the cloud's name: dashboard, events, `sim.clouds[name]`),
    `reply_kinds` (what the mute/malformed knobs may name), `front` (set by attach()).

    The front's services a plug-in uses (core/front.py):
      front.publish(topic, payload, qos=None, retain=False, to=None)
                                                  async, to subscribed devices (to: one session)
      front.reply(kind, device_id, topic, payload, qos=None, to=None)  the same, through knobs
      front.event(device_id, kind, text="", cloud=None)       the log (dashboard, tests)
      front.drop(device_id, cloud)                            abort its connection(s)
      front.registry                                          devices of every cloud
      front.knobs (.declare(name, default, convert))          common and own knobs
      front.ca (the test CA), front.trust(listener, cert)     client certificates
      front.call(coro_fn, *args), front.on_loop(fn, *args)    from a test's thread
    """

    name = "?"
    reply_kinds = ()
    max_qos = 2  # SUBSCRIBE is granted min(requested, max_qos) (Azure: 1)
    max_subscriptions = None  # per session; a SUBSCRIBE beyond it gets 0x80 (Azure: 5)

    def __init__(self):
        self.front = None

    def attach(self, front):
        """Once, before the first start: declare knobs, register devices."""
        self.front = front

    def listeners(self):
        """-> [Listener]: the ports this cloud needs."""
        return []

    def routes(self):
        """-> [Route]: HTTP routes (its own HTTPS API, dashboard actions)."""
        return []

    async def start(self):
        """After the listeners are up (and again after a restart)."""

    async def stop(self):
        """Before the listeners close."""

    def authenticate(self, session):
        """A CONNECT arrived on one of this plug-in's MQTT listeners. session.listener,
        .client_id, .username, .password (bytes or None), .peer_cert (DER or None),
        .keepalive, .clean_session are set. Return the Device it proves to be (a
        core.registry.Device; registered ones appear on the dashboard); may set session.auth
        (a label, default "certificate" or "password"). Raise Refuse to refuse. May be
        async."""
        raise Refuse("%s has no authentication" % self.name)

    def acl(self, session):
        """-> Acl for this session, asked at every check (so it may change)."""
        return Acl()

    def on_connect(self, session):
        """CONNACK 0 was sent; session.device is connected."""

    def on_disconnect(self, session):
        """The session ended (DISCONNECT, network loss, keepalive, takeover, stop)."""

    def on_subscribe(self, session, topic, qos):
        """A subscription the ACL allowed."""

    def on_unsubscribe(self, session, topic):
        pass

    def on_publish(self, session, topic, payload, qos, retain):
        """A publish the ACL allowed (payload: bytes). May be async."""

    def state(self):
        """-> dict merged into the dashboard's /api/state (use keys of your own)."""
        return {}
