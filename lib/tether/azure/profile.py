"""The firmware's Azure profile: settings.json -> an IoTHubDeviceClient (`"cloud": "azure"`).

With DPS (symmetric key, group enrollment or X.509):

    {"cloud": "azure",
     "azure": {"id_scope": "0ne00000000", "registration_id": "dev-1", "group": false,
               "provisioning_host": "global.azure-devices-provisioning.net",
               "cache": "azure_assignment.json", "sastoken_ttl": 3600, "port": 8883},
     "credentials": {"cert": "device.crt.der", "key": "device.key.der", "ca": null}}
    secrets: {"symmetric_key": "..."}   (the enrollment key; the group key with group: true)

With a connection string instead: secrets {"connection_string": "HostName=...;DeviceId=...;
SharedAccessKey=..."} (or "azure": {"hostname", "device_id"} with X.509 credentials).

`credentials.ca` replaces the embedded Azure roots (an emulator, a private gateway). The
DPS assignment is cached in flash (tether.azure.cache); the registration runs as a stage
before the hub connect, again only when the hub refuses the cached identity.
"""


def _path(base, p):
    if p and isinstance(p, str) and base and not p.startswith("/"):
        return base.rstrip("/") + "/" + p
    return p


def make_client(settings):
    from tether.azure.device import IoTHubDeviceClient, parse_connection_string
    from tether.azure.models import X509

    az = settings.get("azure") or {}
    secrets = settings.get("_secrets") or {}
    spec = settings.get("credentials") or {}
    base = settings.get("_dir", "")
    x509 = None
    if spec.get("cert") or spec.get("key"):
        if not (spec.get("cert") and spec.get("key")):
            raise ValueError("credentials: give both cert and key for X.509, or neither")
        x509 = X509(_path(base, spec["cert"]), _path(base, spec["key"]))
    ca = _path(base, spec.get("ca"))
    key = secrets.get("symmetric_key") or az.get("symmetric_key")
    opts = {
        "server_verification_cert": ca,
        "keep_alive": settings.get("keepalive", 60),
        "sastoken_ttl": az.get("sastoken_ttl", 3600),
        "port": settings.get("port") or az.get("port") or 8883,
        "gateway_hostname": az.get("gateway_hostname"),
    }
    cs = secrets.get("connection_string") or az.get("connection_string")
    if cs:
        c = parse_connection_string(cs)
        opts["gateway_hostname"] = opts["gateway_hostname"] or c.get("GatewayHostName")
        key = c.get("SharedAccessKey")
        if key is None and x509 is None:
            raise ValueError("connection string with x509=true: credentials.cert/key missing")
        return IoTHubDeviceClient(c["HostName"], c["DeviceId"], key, x509, **opts)
    if key is None and x509 is None:
        raise ValueError(
            "no Azure credentials: secrets.symmetric_key, secrets.connection_string, or "
            "credentials.cert + credentials.key (X.509)"
        )
    scope = az.get("id_scope")
    if not scope:
        hub, dev = az.get("hostname"), az.get("device_id")
        if not (hub and dev):
            raise ValueError("azure.id_scope (DPS) or azure.hostname + azure.device_id")
        return IoTHubDeviceClient(hub, dev, key, x509, **opts)
    reg = az.get("registration_id") or settings.get("device_id")
    if not reg:
        raise ValueError("azure.registration_id missing (the DPS registration id)")
    if key is not None and az.get("group"):
        from tether.sas import derive_device_key

        key = derive_device_key(key, reg)  # computed here: the group key never leaves
    from tether.azure import cache

    cpath = _path(base, az.get("cache", "azure_assignment.json"))
    doc = cache.load(cpath, scope, reg)
    client = IoTHubDeviceClient(
        doc["assigned_hub"] if doc else "unassigned.invalid",
        doc["device_id"] if doc else reg,
        key,
        x509,
        **opts,
    )
    client.assignment = doc
    prov = Provisioner(client, az, scope, reg, key, x509, ca, cpath)
    client.add_stage("dps", prov.stage, 240000, first=True)
    return client


class Provisioner:
    """The "dps" stage: register when nothing is cached or the hub refused the identity."""

    def __init__(self, client, az, scope, reg, key, x509, ca, cpath):
        self.client = client
        self.args = (
            az.get("provisioning_host", "global.azure-devices-provisioning.net"),
            reg,
            scope,
            key,
            x509,
            ca,
            az.get("dps_gateway_hostname"),
            60,
            az.get("sastoken_ttl", 3600),
            az.get("dps_port") or az.get("port") or 8883,
        )
        self.payload = az.get("provisioning_payload")
        self.cpath = cpath
        self.registrations = 0

    async def stage(self):
        from tether.azure import cache

        c = self.client
        err = c.session.last_error
        if c.assignment is not None and getattr(err, "code", None) in (4, 5):
            if type(err).__name__ == "MQTTConnectError":
                cache.clear(self.cpath)  # the hub refused the cached identity
                c.assignment = None
                c.session.last_error = None
        if c.assignment is not None:
            return
        await c._time_stage()  # SAS tokens need a sane clock, and this runs before "time"
        import sys

        fresh = "tether.azure.dps" not in sys.modules
        from tether.azure.dps import ProvisioningDeviceClient

        p = ProvisioningDeviceClient(*self.args)
        p.provisioning_payload = self.payload
        buf = c._rxbuf  # the hub's, unused until its first connect (None after it)
        if isinstance(buf, bytearray) and len(buf) >= 4096:
            p.buffer = buf
        try:
            r = await p.register()
        finally:
            del p, ProvisioningDeviceClient
            if fresh:  # loaded for this registration only: its code goes before the hub's TLS
                sys.modules.pop("tether.azure.dps", None)
                try:
                    delattr(sys.modules["tether.azure"], "dps")
                except (AttributeError, KeyError):
                    pass
        self.registrations += 1
        st = r.registration_state
        if r.status != "assigned" or st is None or not st.assigned_hub:
            raise OSError("DPS did not assign a hub: status %s" % r.status)
        c.set_identity(st.assigned_hub, st.device_id)
        doc = {
            "id_scope": self.args[2],
            "registration_id": self.args[1],
            "assigned_hub": st.assigned_hub,
            "device_id": st.device_id,
        }
        cache.save(self.cpath, doc)
        c.assignment = doc
