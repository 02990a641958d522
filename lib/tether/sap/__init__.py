"""SAP IoT (the Cloud Foundry "Internet of Things" MQTT gateway) on Tether (docs/sap.md).

    from tether.sap import SAPIoTClient

Names are imported when first asked for (the `_attrs` pattern of MicroPython's asyncio):
`from tether.sap import MeasureRefused` loads the small acks module, not the MQTT client.
"""

_attrs = {
    "SAPIoTClient": "client",
    "Measure": "acks",
    "SAPError": "acks",
    "MeasureRefused": "acks",
    "MeasureUnconfirmed": "acks",
    "SAPConnectError": "refusal",
}

_SUBMODULES = ("client", "acks", "refusal", "profile")


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
