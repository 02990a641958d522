# ruff: noqa: F821  (metadata/require/package are defined by MicroPython's manifestfile)
# Azure IoT Hub + DPS: tether.azure (the azure-iot-device API: hub, DPS, twin, methods, C2D).
metadata(description="Tether for Azure IoT Hub and DPS (tether.azure)")

add_library("tether", "..")  # this folder's siblings, whoever includes it
require("tether", library="tether")
require("tether-sas", library="tether")  # with tether-encoding and tether-hmac
package("tether/azure", base_path="../../lib")  # every module of the folder
