"""tether.azure.aio.IoTHubDeviceClient: HubClient with the factories of azure-iot-device 2.14.

    client = IoTHubDeviceClient.create_from_connection_string(
        "HostName=h.azure-devices.net;DeviceId=dev1;SharedAccessKey=...")
    client = IoTHubDeviceClient.create_from_symmetric_key(key, hostname, device_id)
    client = IoTHubDeviceClient.create_from_x509_certificate(x509, hostname, device_id)

Options each factory takes: server_verification_cert (PEM/DER text, bytes or path: the
roots to trust instead of the embedded Azure ones), gateway_hostname (TLS and TCP go there,
the username and the SAS keep the hub's name), keep_alive (s), sastoken_ttl (s), and the
extension port= (the SDK hard-codes 8883). Tether-only: store= (telemetry on flash across
reboots), max_packet=. SDK options with no meaning here (product_info, cipher,
connection_retry, ...) are accepted and ignored; websockets and proxy_options are refused.
"""

from tether.azure.hub import HubClient

_KNOWN = (
    "server_verification_cert",
    "gateway_hostname",
    "keep_alive",
    "sastoken_ttl",
    "port",
    "store",
    "max_packet",
)
_IGNORED = (
    "product_info",
    "cipher",
    "connection_retry",
    "connection_retry_interval",
    "auto_connect",
    "ensure_desired_properties",
)


def _options(kwargs):
    out = {}
    for k, v in kwargs.items():
        if k in _KNOWN:
            out[k] = v
        elif k in ("websockets", "proxy_options"):
            if v:
                raise ValueError("%s is not supported: MQTT over TLS on 8883 only" % k)
        elif k not in _IGNORED:
            raise TypeError("Unsupported keyword argument: '%s'" % k)
    return out


def parse_connection_string(cs):
    """{"HostName": ..., "DeviceId": ..., ...} of `k=v;k=v`; ValueError if malformed."""
    out = {}
    for part in cs.split(";"):
        if not part:
            continue
        i = part.find("=")
        if i <= 0:
            raise ValueError("connection string: %r is not key=value" % part.split("=")[0])
        out[part[:i]] = part[i + 1 :]  # a key ends in "=" padding: split at the first "="
    for k in ("HostName", "DeviceId"):
        if k not in out:
            raise ValueError("connection string without %s" % k)
    if "SharedAccessKey" not in out and out.get("x509", "").lower() != "true":
        raise ValueError("connection string needs SharedAccessKey or x509=true")
    return out


class IoTHubDeviceClient(HubClient):
    @classmethod
    def create_from_connection_string(cls, connection_string, **kwargs):
        cs = parse_connection_string(connection_string)
        x509 = kwargs.pop("x509", None)
        opts = _options(kwargs)
        if "ModuleId" in cs:
            raise ValueError("module identities are not supported (IoTHubModuleClient)")
        if cs.get("GatewayHostName") and not opts.get("gateway_hostname"):
            opts["gateway_hostname"] = cs["GatewayHostName"]
        if "SharedAccessKey" in cs:
            return cls(cs["HostName"], cs["DeviceId"], symmetric_key=cs["SharedAccessKey"], **opts)
        if x509 is None:
            raise ValueError("x509=true in the connection string needs the x509= argument")
        return cls(cs["HostName"], cs["DeviceId"], x509=x509, **opts)

    @classmethod
    def create_from_symmetric_key(cls, symmetric_key, hostname, device_id, **kwargs):
        return cls(hostname, device_id, symmetric_key=symmetric_key, **_options(kwargs))

    @classmethod
    def create_from_x509_certificate(cls, x509, hostname, device_id, **kwargs):
        return cls(hostname, device_id, x509=x509, **_options(kwargs))
