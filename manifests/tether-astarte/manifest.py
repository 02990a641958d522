# ruff: noqa: F821  (metadata/require/package are defined by MicroPython's manifestfile)
# Astarte: tether.astarte (the astarte-device-sdk API: pairing, interfaces, BSON, properties).
metadata(description="Tether for Astarte (tether.astarte)")

add_library("tether", "..")  # this folder's siblings, whoever includes it
require("tether", library="tether")
require("tether-certauth", library="tether")  # mutual TLS with the certificate it obtains
require("tether-http", library="tether")  # the pairing API
require("tether-csr", library="tether")  # with tether-keys: the device's key and CSR
require("tether-jwt", library="tether")  # agent registration with a realm key
require("tether-bson", library="tether")
require("tether-zlib", library="tether")
package("tether/astarte", base_path="../../lib", opt=3)  # every module of the folder
