"""The firmware's akenza profile: settings.json -> an AkenzaClient (`"cloud": "akenza"`).

    {"cloud": "akenza", "device_id": "dev-1",
     "credentials": {"key": "ec_private.der", "ca": "akenza_ca.der"},
     "akenza": {"algorithm": "ES256", "token_lifetime_s": 1200, "audience": null},
     "server": null, "port": null, "keepalive": 60, "server_hostname": null}

`credentials.key`: the device's private key in the board's flash (DER or PEM, relative to
the settings' folder) or in the SE05x (`se05x:token=0x...`, with `credentials.cert` naming
the certificate the kid comes from). `credentials.ca`: the broker's root CA (needed on a
board: none is embedded, docs/akenza.md). Uplink-secret mode instead of a key:
`akenza.connector_id` and `connector_secret` in the secrets. `akenza.tls: false` for a
plain broker (tests only).

Everything that can refuse the configuration is checked here, before the firmware arms its
watchdog: the key is loaded and its kid computed, the CA file read. Raises ValueError
saying what to fix (tether.errors.CredentialError for a credential).
"""


def make_client(settings):
    from tether.akenza.client import AkenzaClient

    device_id = settings.get("device_id") or settings.get("_secrets", {}).get("device_id")
    if not device_id:
        raise ValueError("device_id missing: the akenza device id (settings or secrets)")
    ak = settings.get("akenza") or {}
    spec = settings.get("credentials") or {}
    base = settings.get("_dir", "")
    ca = spec.get("ca")
    if ca and isinstance(ca, str) and not ca.startswith("/") and base:
        ca = base.rstrip("/") + "/" + ca
    kw = {}
    connector = ak.get("connector_id")
    if connector:
        secret = settings.get("_secrets", {}).get("connector_secret")
        if not secret:
            raise ValueError("connector_secret missing from the secrets (uplink-secret mode)")
        kw["connector_id"] = connector
        kw["secret"] = secret
    else:
        key = spec.get("key")
        if not key:
            raise ValueError(
                "credentials.key missing: the device's private key (DER/PEM file or "
                "se05x:token=0x...), or akenza.connector_id for uplink-secret mode"
            )
        kw["key"] = key
        kw["cert"] = spec.get("cert")
        kw["se"] = settings.get("_se05x")
        kw["base_dir"] = base
        kw["algorithm"] = ak.get("algorithm")
        kw["audience"] = ak.get("audience")
        kw["token_lifetime"] = ak.get("token_lifetime_s", 1200)
    client = AkenzaClient(
        device_id,
        host=settings.get("server") or "mqtt.akenza.io",
        port=settings.get("port"),
        keepalive=settings.get("keepalive", 60),
        ca=ca,
        tls=ak.get("tls", True),
        server_hostname=settings.get("server_hostname"),
        **kw,
    )
    servers = (settings.get("time") or {}).get("servers")
    if servers:
        client.ntp_servers = tuple(servers)
    return client
