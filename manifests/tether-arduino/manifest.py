# ruff: noqa: F821  (metadata/require/package/module are defined by MicroPython's manifestfile)
# The Arduino IoT Cloud: tether.arduino (client, SenML/CBOR, records, roots, firmware profile).
metadata(description="Tether for the Arduino IoT Cloud (tether.arduino)")

add_library("tether", "..")  # this folder's siblings, whoever includes it
require("tether", library="tether")
options.defaults(certauth=False)  # manifest.py passes its own
if options.certauth:  # certificate auth: DER/PEM files, SE05x keys, PEM CAs
    require("tether-certauth", library="tether")
else:  # password auth only: tether.nocert stands in for tether.creds (DER CAs)
    require("tether-nocert", library="tether")
package("tether/arduino", base_path="../../lib", opt=3)  # every module of the folder
module("tether/cbor.py", base_path="../../lib", opt=3)
module("tether/cbor_decode.py", base_path="../../lib", opt=3)
module("tether/senml.py", base_path="../../lib", opt=3)
