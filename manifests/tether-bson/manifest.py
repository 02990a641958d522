# ruff: noqa: F821  (metadata/require/module are defined by MicroPython's manifestfile)
# Building block: bounded BSON encode/decode.
metadata(description="Tether building block: BSON")

add_library("tether", "..")  # this folder's siblings, whoever includes it
require("tether", library="tether")  # the core: compat, errors, log, ...

module("tether/bson.py", base_path="../../lib", opt=3)
