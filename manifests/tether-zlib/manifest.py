# ruff: noqa: F821  (metadata/require/module are defined by MicroPython's manifestfile)
# Building block: bounded inflate, and a stored-block zlib writer.
metadata(description="Tether building block: zlib inflate with a bound")

add_library("tether", "..")  # this folder's siblings, whoever includes it
require("tether", library="tether")  # the core: compat, errors, log, ...

module("tether/zlib.py", base_path="../../lib", opt=3)
