"""Arduino IoT Cloud client with the API of arduino-iot-cloud-py (docs/arduino.md).

A script written for the original client ports by changing its import line:

    from tether.arduino import ArduinoCloudClient

Names are imported when first asked for (the `_attrs` pattern of MicroPython's asyncio), so
`from tether.arduino import Location` loads the variable types, not the MQTT client.
"""

_attrs = {
    "ArduinoCloudClient": "client",
    "CloudObject": "records",
    "ArduinoCloudObject": "records",
    "Color": "composites",
    "ColoredLight": "composites",
    "DimmedLight": "composites",
    "Location": "composites",
    "Schedule": "composites",
    "Task": "records",
    "Television": "composites",
}

_SUBMODULES = (
    "roots",
    "protocol",
    "records",
    "composites",
    "apply",
    "offline",
    "variables",
    "client",
    "scheduler",
    "ssl_params",
    "profile",
)


def __getattr__(name):
    # CADATA (the Arduino root, DER) as in the original package, loaded only when asked for,
    # and never kept here (the roots module is dropped after use).
    if name == "CADATA":
        from tether.arduino.roots import ARDUINO_ROOT

        return ARDUINO_ROOT
    mod = _attrs.get(name)
    if mod is not None:
        attr = "CloudObject" if name == "ArduinoCloudObject" else name  # the original's name
        value = getattr(__import__("tether.arduino." + mod, None, None, [attr]), attr)
        globals()[name] = value
        return value
    # MicroPython asks here before importing a submodule (`from tether.arduino import
    # roots`): import it, and hand it over without keeping a reference.
    if name in _SUBMODULES:
        return __import__("tether.arduino." + name, None, None, [name])
    raise AttributeError(name)


__all__ = (  # a tuple: a constant of the image, where a list is built in RAM
    "ArduinoCloudClient",
    "ArduinoCloudObject",
    "CloudObject",
    "Task",
    "Location",
    "Color",
    "ColoredLight",
    "DimmedLight",
    "Schedule",
    "Television",
)
