# ruff: noqa: F821  (metadata/require/package are defined by MicroPython's manifestfile)
# Azure IoT Hub + DPS: tether.azure (the azure-iot-device API: hub, DPS, twin, methods, C2D).
metadata(description="Tether for Azure IoT Hub and DPS (tether.azure)")

add_library("tether", "..")  # this folder's siblings, whoever includes it
require("tether", library="tether")
require("tether-sas", library="tether")  # with tether-encoding and tether-hmac
require("tether-requests", library="tether")  # twin $rid and DPS replies
options.defaults(certauth=False)  # manifest.py passes its own
if options.certauth:  # X.509 device certificates, PEM CAs
    require("tether-certauth", library="tether")
else:  # SAS only: tether.nocert stands in for tether.creds (DER CAs)
    require("tether-nocert", library="tether")
package("tether/azure", base_path="../../lib", opt=3)  # every module of the folder
