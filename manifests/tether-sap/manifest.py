# ruff: noqa: F821  (metadata/require/package are defined by MicroPython's manifestfile)
# SAP IoT: tether.sap (client, measure acknowledgements, refusal explanations).
metadata(description="Tether for SAP IoT (tether.sap)")

add_library("tether", "..")  # this folder's siblings, whoever includes it
require("tether", library="tether")
require("tether-certauth", library="tether")  # mutual TLS: the device's certificate and key
require("tether-tlscause", library="tether")  # tether.sap.refusal explains refusals
package("tether/sap", base_path="../../lib", opt=3)  # every module of the folder
