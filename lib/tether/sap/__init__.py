"""SAP IoT (the Cloud Foundry "Internet of Things" MQTT gateway) on Tether (docs/sap.md).

    from tether.sap import SAPIoTClient

Names are imported when first asked for (the `_attrs` pattern of MicroPython's asyncio):
`from tether.sap import MeasureRefused` loads the small errors module, not the MQTT client.
"""

_attrs = {
    "SAPIoTClient": "client",
    "Measure": "acks",
    "SAPError": "errors",
    "MeasureRefused": "errors",
    "MeasureUnconfirmed": "errors",
    "SAPConnectError": "refusal",
}

_SUBMODULES = ("client", "acks", "errors", "refusal", "profile", "stored")


def __getattr__(name):
    mod = _attrs.get(name)
    if mod is not None:
        value = getattr(__import__("tether.sap." + mod, None, None, [name]), name)
        globals()[name] = value
        return value
    # MicroPython asks here before importing a submodule (`from tether.sap import acks`).
    if name in _SUBMODULES:
        return __import__("tether.sap." + name, None, None, [name])
    raise AttributeError(name)


__all__ = list(_attrs)
