# ruff: noqa: F821  (metadata/require/module are defined by MicroPython's manifestfile)
# Building block: HMAC-SHA256 on hashlib (micropython-lib's hmac is not on every port).
metadata(description="Tether building block: HMAC-SHA256")

add_library("tether", "..")  # this folder's siblings, whoever includes it
require("tether", library="tether")  # the core: compat, errors, log, ...

module("tether/hmac.py", base_path="../../lib", opt=3)
