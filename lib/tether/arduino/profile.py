"""The firmware's Arduino IoT Cloud profile: settings.json -> an ArduinoCloudClient.

    client = make_client(settings)     # the firmware calls this (`"cloud": "arduino"`)

`settings` is the parsed settings.json (docs/firmware.md) with `_dir` (the folder relative
paths use), `_secrets` (secrets.json / secrets.py) and, on the unix port, `_se05x` (the fake
secure element). Everything that can refuse the configuration is checked here, before the
firmware arms its watchdog: the credential files (or SE05x objects) and, without
credentials, the `secret_key` of basic auth. Raises ValueError saying what to fix
(tether.errors.CredentialError for a credential).
"""


def ssl_params(settings):
    """The client's ssl_params (arduino-iot-cloud-py's names) from settings["credentials"],
    or None for basic auth."""
    try:
        from tether import creds
    except ImportError:  # an image without tether-certauth: DER CAs only
        from tether import nocert as creds

    kw = creds.load_credentials(settings, settings.get("_se05x"))
    params = {}
    if "cadata" in kw:
        params["cadata"] = kw["cadata"]
    if "cert" in kw:
        params["certfile"] = kw["cert"]  # bytes: the client uses them as they are
        params["keyfile"] = kw["key"]
        if "ecdsa_sign_callback" in kw:
            params["ecdsa_sign_callback"] = kw["ecdsa_sign_callback"]
    if settings.get("insecure"):
        params["insecure"] = True
    if settings.get("server_hostname"):
        params["server_hostname"] = settings["server_hostname"]
    return params


def make_client(settings):
    from tether.arduino import ArduinoCloudClient

    device_id = settings["device_id"]
    params = ssl_params(settings)
    if "certfile" in params:
        user = password = None  # mTLS: the certificate is the identity
    else:
        user, password = device_id, settings.get("_secrets", {}).get("secret_key")
        if not password:
            raise ValueError("secret_key missing: needed without credentials (basic auth)")
    servers = (settings.get("time") or {}).get("servers") or ("pool.ntp.org",)
    return ArduinoCloudClient(
        device_id,
        username=user,
        password=password,
        ssl_params=params,
        server=settings.get("server"),
        port=settings.get("port"),
        keepalive=settings.get("keepalive", 10),
        ntp_server=servers[0],
    )
