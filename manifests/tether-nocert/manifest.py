# ruff: noqa: F821  (metadata/require/module are defined by MicroPython's manifestfile)
# Building block: tether.nocert, what stands in for tether.creds in an image without
# tether-certauth (certificate authentication): it trusts DER CA files and refuses keys,
# certificates and PEM with an error naming tether-certauth. Arduino and Azure require it
# when they are built without certauth (password, SAS); an image with certauth never needs it.
metadata(description="Tether building block: DER CA loading without certificate authentication")

add_library("tether", "..")  # this folder's siblings, whoever includes it
require("tether", library="tether")  # the core: compat, errors, tlsctx, ...

module("tether/nocert.py", base_path="../../lib", opt=3)
