# ruff: noqa: F821  (metadata/require/module are defined by MicroPython's manifestfile)
# Building block: RSA PKCS#1 v1.5 signing (tether.rsa), for RSA private keys (RS256):
# akenza's RSA keys, an Astarte realm key (tether-jwt). tether.keys loads an RSA key only
# when it is in the image, else it says which component to add.
metadata(description="Tether building block: RSA signing (RS256)")

add_library("tether", "..")  # this folder's siblings, whoever includes it
require("tether-keys", library="tether")  # the key loader that builds RSA keys

module("tether/rsa.py", base_path="../../lib", opt=3)
