# ruff: noqa: F821  (metadata/require/module are defined by MicroPython's manifestfile)
# Building block: base64url, percent-encoding and hex (tokens and topics).
metadata(description="Tether building block: base64url, URL percent-encoding, hex")

add_library("tether", "..")  # this folder's siblings, whoever includes it
require("tether", library="tether")  # the core: compat, errors, log, ...

module("tether/encoding.py", base_path="../../lib", opt=3)
