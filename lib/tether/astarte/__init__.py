"""Astarte on Tether: the astarte-device-sdk API (astarte.device) on a board (docs/astarte.md).

    from tether.astarte import DeviceMqtt, register_device_with_jwt_token

Names are imported when first asked for (the `_attrs` pattern): importing the package costs
nothing until the client, the pairing functions or the interfaces are used. The table is one
string, not a dict: a dict's 22 keys and values are qstrs a port interns at import and never
frees (6.6 KB of heap on the 64-bit unix port from .mpy; the string is 1.6 KB).
"""

# " name:module " for every name
_attrs = (
    " DeviceMqtt:device Interface:interfaces Mapping:model PropertyFile:properties"
    " register_device_with_jwt_token:pairing register_device_with_private_key:pairing"
    " aregister_device_with_jwt_token:pairing aregister_device_with_private_key:pairing"
    " generate_device_id:pairing generate_random_device_id:pairing AstarteError:errors"
    " APIError:errors AuthorizationError:errors DeviceAlreadyRegisteredError:errors"
    " DeviceConnectingError:errors DeviceDisconnectedError:errors"
    " InterfaceFileDecodeError:errors InterfaceFileNotFoundError:errors"
    " InterfaceNotFoundError:errors JWTGenerationError:errors"
    " PersistencyDirectoryNotFoundError:errors ValidationError:errors "
)
_SUBMODULES = (
    " certificate codec device errors iface interfaces model pairing pem profile properties sync "
)


def __getattr__(name):
    i = _attrs.find(" " + name + ":")
    if i >= 0:
        j = i + len(name) + 2
        mod = _attrs[j : _attrs.find(" ", j)]
        value = getattr(__import__("tether.astarte." + mod, None, None, [name]), name)
        globals()[name] = value
        return value
    if (" " + name + " ") in _SUBMODULES:
        return __import__("tether.astarte." + name, None, None, [name])
    raise AttributeError(name)
