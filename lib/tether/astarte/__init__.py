"""Astarte on Tether: the astarte-device-sdk API (astarte.device) on a board (docs/astarte.md).

    from tether.astarte import DeviceMqtt, register_device_with_jwt_token

Names are imported when first asked for (the `_attrs` pattern): importing the package costs
nothing until the client, the pairing functions or the interfaces are used.
"""

_attrs = {
    "DeviceMqtt": "device",
    "Interface": "interfaces",
    "Mapping": "interfaces",
    "PropertyFile": "properties",
    "register_device_with_jwt_token": "pairing",
    "register_device_with_private_key": "pairing",
    "aregister_device_with_jwt_token": "pairing",
    "aregister_device_with_private_key": "pairing",
    "generate_device_id": "pairing",
    "generate_random_device_id": "pairing",
    "AstarteError": "errors",
    "APIError": "errors",
    "AuthorizationError": "errors",
    "DeviceAlreadyRegisteredError": "errors",
    "DeviceConnectingError": "errors",
    "DeviceDisconnectedError": "errors",
    "InterfaceFileDecodeError": "errors",
    "InterfaceFileNotFoundError": "errors",
    "InterfaceNotFoundError": "errors",
    "JWTGenerationError": "errors",
    "PersistencyDirectoryNotFoundError": "errors",
    "ValidationError": "errors",
}

_SUBMODULES = (
    "codec", "device", "errors", "interfaces", "pairing", "profile", "properties", "sync",
)  # fmt: skip


def __getattr__(name):
    mod = _attrs.get(name)
    if mod is not None:
        value = getattr(__import__("tether.astarte." + mod, None, None, [name]), name)
        globals()[name] = value
        return value
    # MicroPython asks here before importing a submodule (`from tether.astarte import
    # codec`): import it, and hand it over.
    if name in _SUBMODULES:
        return __import__("tether.astarte." + name, None, None, [name])
    raise AttributeError(name)
