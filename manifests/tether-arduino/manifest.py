# ruff: noqa: F821  (metadata/require/package/module are defined by MicroPython's manifestfile)
# The Arduino IoT Cloud: tether.arduino (client, SenML/CBOR, records, roots, firmware profile).
metadata(description="Tether for the Arduino IoT Cloud (tether.arduino)")

add_library("tether", "..")  # this folder's siblings, whoever includes it
require("tether", library="tether")
package("tether/arduino", base_path="../../lib")  # every module of the folder
module("tether/cbor.py", base_path="../../lib")
module("tether/cbor_decode.py", base_path="../../lib")
module("tether/senml.py", base_path="../../lib")
