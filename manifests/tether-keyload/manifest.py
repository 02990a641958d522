# ruff: noqa: F821  (metadata/require/module are defined by MicroPython's manifestfile)
# Building block: private keys loaded from DER/PEM files (tether.keyload, behind
# tether.keys.load_private_key): SEC1, PKCS#1, PKCS#8. akenza and tether-jwt require it; an
# image that only makes its own key (Astarte: key, CSR, certificate on the device) does not.
metadata(description="Tether building block: loading private keys (DER/PEM)")

add_library("tether", "..")  # this folder's siblings, whoever includes it
require("tether-keys", library="tether")

module("tether/keyload.py", base_path="../../lib", opt=3)
