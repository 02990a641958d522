"""The firmware's Astarte profile: settings.json -> a DeviceMqtt (`"cloud": "astarte"`).

    {"cloud": "astarte", "device_id": "V_zv6ThCCtXWveQ8mPjsKg",
     "astarte": {"realm": "myrealm", "pairing_url": "https://api.example.com/pairing",
                 "interfaces": "interfaces", "persistency_dir": "astarte",
                 "ca": "astarte_ca.der", "ignore_ssl_errors": false, "persistent_session": true,
                 "key": "se05x:token=0x00000064", "key_cert": "se05x:token=0x00000065"},
     "keepalive": 60}

secrets.json holds `astarte_credentials_secret` (or `credentials_secret`): the device is
registered beforehand (register_device_with_jwt_token on a host, or the dashboard).
`interfaces` is a folder of interface JSON files and `persistency_dir` the flash folder for
the key, the certificate and the properties (both relative to the settings' folder). `ca`
is the root CA of the pairing API and of the broker (needed on a board: MicroPython has no
system store). `key` (optional): the device key inside the board's SE05x instead of one
made and kept in flash, `key_cert` its certificate (for the public key of the CSR).

Everything that can refuse the configuration is checked here, before the firmware arms its
watchdog: the settings, the CA file, every interface file (a bad one is named).
"""


def _join(base, path):
    if not path or path.startswith("/") or not base:
        return path
    return base.rstrip("/") + "/" + path


def make_client(settings):
    from tether.astarte.device import DeviceMqtt
    from tether.astarte.pairing import makedirs

    secrets = settings.get("_secrets") or {}
    device_id = settings.get("device_id") or secrets.get("device_id")
    if not device_id:
        raise ValueError("device_id missing: the Astarte device id (settings or secrets)")
    a = settings.get("astarte") or {}
    realm = a.get("realm")
    url = a.get("pairing_url")
    if not realm or not url:
        raise ValueError("astarte.realm and astarte.pairing_url are required")
    secret = secrets.get("astarte_credentials_secret") or secrets.get("credentials_secret")
    if not secret:
        raise ValueError(
            "astarte_credentials_secret missing from the secrets: register the device first "
            "(tether.astarte.register_device_with_jwt_token)"
        )
    base = settings.get("_dir", "")
    persist = _join(base, a.get("persistency_dir", "astarte"))
    makedirs(persist)
    ca = a.get("ca")
    if ca:
        ca = _join(base, ca)
        with open(ca, "rb") as f:  # OSError here names the file: better now than at connect
            ca = f.read()
    client = DeviceMqtt(
        device_id,
        realm,
        secret,
        url,
        persist,
        ignore_ssl_errors=bool(a.get("ignore_ssl_errors", False)),
        ca=ca,
        keepalive=settings.get("keepalive", 60),
        key=a.get("key"),
        key_cert=a.get("key_cert"),
        persistent_session=bool(a.get("persistent_session", False)),
    )
    client.add_interfaces_from_dir(_join(base, a.get("interfaces", "interfaces")))
    servers = (settings.get("time") or {}).get("servers")
    if servers:
        client.ntp_servers = tuple(servers)
    return client
