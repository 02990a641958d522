"""Arduino IoT Cloud client with the API of arduino-iot-cloud-py (docs/arduino.md).

A script written for the original client ports by changing its import line:

    from tether.arduino import ArduinoCloudClient
"""

from tether.arduino.client import ArduinoCloudClient
from tether.arduino.records import (
    CloudObject,
    Color,
    ColoredLight,
    DimmedLight,
    Location,
    Schedule,
    Task,
    Television,
)

ArduinoCloudObject = CloudObject  # the original's name for the base class


def __getattr__(name):
    # CADATA (the Arduino root, DER) as in the original package, loaded only when asked for.
    # MicroPython asks here before importing a submodule (`from tether.arduino import
    # roots`), so submodules not imported yet are imported from here.
    if name == "CADATA":
        from tether.arduino.roots import ARDUINO_ROOT

        return ARDUINO_ROOT
    if name in ("roots", "protocol", "records", "client", "scheduler"):
        __import__("tether.arduino." + name)
        return globals()[name]
    raise AttributeError(name)


__all__ = [
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
]
