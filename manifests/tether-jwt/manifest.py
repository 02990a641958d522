# ruff: noqa: F821  (metadata/require/module are defined by MicroPython's manifestfile)
# Building block: JWT (ES256 / RS256) signed by a Signer (software key or SE05x).
metadata(description="Tether building block: JWT ES256/RS256")

add_library("tether", "..")  # this folder's siblings, whoever includes it
require("tether", library="tether")  # the core: compat, errors, log, ...
require("tether-encoding", library="tether")
require("tether-keys", library="tether")
require("tether-keyload", library="tether")  # a key given as DER/PEM
require("tether-rsa", library="tether")  # RS256 keys (an Astarte realm key is RSA by default)
module("tether/jwt.py", base_path="../../lib", opt=3)
