"""Azure IoT Hub and DPS with the API of azure-iot-device 2.14 (docs/azure.md).

A program written for the SDK ports by changing its import lines:

    from tether.azure import Message, MethodResponse, X509
    from tether.azure.aio import IoTHubDeviceClient, ProvisioningDeviceClient

`tether.azure` itself has the value classes, the exceptions and the synchronous clients
(tether.azure.sync). Names are imported when first asked for (the `_attrs` pattern of
MicroPython's asyncio): `from tether.azure import Message` does not load MQTT.
"""

_attrs = {
    "Message": "models",
    "MethodRequest": "models",
    "MethodResponse": "models",
    "X509": "models",
    "RegistrationResult": "models",
    "IoTHubDeviceClient": "sync",
    "ProvisioningDeviceClient": "sync",
    "OperationCancelled": "exceptions",
    "OperationTimeout": "exceptions",
    "ClientError": "exceptions",
    "ConnectionFailedError": "exceptions",
    "ConnectionDroppedError": "exceptions",
    "NoConnectionError": "exceptions",
    "CredentialError": "exceptions",
    "ServiceError": "exceptions",
}

_SUBMODULES = (
    "aio",
    "bag",
    "cache",
    "common",
    "features",
    "device",
    "dps",
    "exceptions",
    "hub",
    "models",
    "profile",
    "roots",
    "sync",
)


def __getattr__(name):
    mod = _attrs.get(name)
    if mod is not None:
        value = getattr(__import__("tether.azure." + mod, None, None, [name]), name)
        globals()[name] = value
        return value
    # MicroPython asks here before importing a submodule (`from tether.azure import aio`).
    if name in _SUBMODULES:
        return __import__("tether.azure." + name, None, None, [name])
    raise AttributeError(name)


__all__ = [
    "IoTHubDeviceClient",
    "ProvisioningDeviceClient",
    "Message",
    "MethodRequest",
    "MethodResponse",
    "X509",
    "RegistrationResult",
    "ClientError",
    "ConnectionFailedError",
    "ConnectionDroppedError",
    "CredentialError",
    "NoConnectionError",
    "OperationCancelled",
    "OperationTimeout",
    "ServiceError",
]
