# ruff: noqa: F821  (metadata/require/module are defined by MicroPython's manifestfile)
# Building block: Azure shared access signatures (hub and DPS), a Credentials provider.
metadata(description="Tether building block: SAS tokens (Azure IoT Hub, DPS)")

add_library("tether", "..")  # this folder's siblings, whoever includes it
require("tether", library="tether")  # the core: compat, errors, log, ...
require("tether-encoding", library="tether")
require("tether-hmac", library="tether")
module("tether/sas.py", base_path="../../lib", opt=3)
