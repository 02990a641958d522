"""akenza on Tether: MQTT with JWT device credentials signed on the device (docs/akenza.md).

    from tether.akenza import AkenzaClient

Names are imported when first asked for (the `_attrs` pattern), so importing the package
costs nothing until the client (or the credentials) are used.
"""

_attrs = {
    "AkenzaClient": "client",
    "load_signer": "keyload",
    "JwtCredentials": "credentials",
    "AUDIENCE": "credentials",
    "TokenRefused": "refused",
}

_SUBMODULES = ("client", "credentials", "keyload", "profile", "refused")


def __getattr__(name):
    mod = _attrs.get(name)
    if mod is not None:
        value = getattr(__import__("tether.akenza." + mod, None, None, [name]), name)
        globals()[name] = value
        return value
    # MicroPython asks here before importing a submodule (`from tether.akenza import
    # profile`): import it, and hand it over.
    if name in _SUBMODULES:
        return __import__("tether.akenza." + name, None, None, [name])
    raise AttributeError(name)


__all__ = ["AkenzaClient", "JwtCredentials", "TokenRefused", "load_signer"]
