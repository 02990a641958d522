"""The firmware's SAP IoT profile: settings.json -> a SAPIoTClient (`"cloud": "sap"`).

    client = make_client(settings)     # the firmware calls this, before arming the watchdog

Settings it reads (docs/sap.md, "Firmware"): `device_id` (the device alternate id),
`server` (the tenant's host, e.g. demo.eu10.cp.iot.sap), `port` (8883), `credentials`
{"key", "cert", "ca"} (paths relative to `_dir`, DER or PEM; the key may be `se05x:...` on
boards whose TLS signs through the SE05x), `server_hostname`, `keepalive` (60 s),
`ack_timeout_ms`. Everything that can refuse the configuration is checked here: a missing
server, missing or unreadable credentials, a key that is not the certificate's. Raises
ValueError saying what to fix (tether.errors.CredentialError for a credential).
"""

_SE05X = "se05x:"


def make_client(settings):
    from tether import creds
    from tether.sap.client import SAPIoTClient

    server = settings.get("server")
    if not server:
        raise ValueError("server missing: the tenant's IoT host, e.g. demo.eu10.cp.iot.sap")
    if settings.get("insecure"):
        raise ValueError("insecure is not offered for SAP IoT: give credentials.ca instead")
    spec = settings.get("credentials") or {}
    if not spec.get("key") or not spec.get("cert"):
        raise ValueError(
            "credentials.key and credentials.cert missing: SAP IoT devices log in with their "
            "certificate only (tools/sap_cert.py makes key.der and cert.der from SAP's bundle)"
        )
    se = settings.get("_se05x")
    kw = creds.load_credentials(settings, se)  # reads and checks every file now
    key = spec["key"] if spec["key"].startswith(_SE05X) else kw["key"]
    client = SAPIoTClient(
        settings["device_id"],
        server,
        settings.get("port") or 8883,
        cert=kw["cert"],
        key=key,
        ca=kw.get("cadata"),
        keepalive=settings.get("keepalive", 60),
        ack_timeout_ms=settings.get("ack_timeout_ms"),
        server_hostname=settings.get("server_hostname"),
    )
    client.se = se
    return client
