"""The asyncio API of azure.iot.device.aio 2.14: a program ports by changing its imports.

    from tether.azure.aio import IoTHubDeviceClient, ProvisioningDeviceClient

Handlers set on the clients may be plain functions or coroutines; a method handler may
await send_method_response(). Names load when first asked for.
"""

_attrs = {
    "IoTHubDeviceClient": "device",
    "ProvisioningDeviceClient": "dps",
}


def __getattr__(name):
    mod = _attrs.get(name)
    if mod is None:
        raise AttributeError(name)
    value = getattr(__import__("tether.azure." + mod, None, None, [name]), name)
    globals()[name] = value
    return value


__all__ = ["IoTHubDeviceClient", "ProvisioningDeviceClient"]  # noqa: F822 (lazy)
