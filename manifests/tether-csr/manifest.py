# ruff: noqa: F821  (metadata/require/module are defined by MicroPython's manifestfile)
# Building block: PKCS#10 certificate signing requests for a P-256 key.
metadata(description="Tether building block: PKCS#10 CSR")

add_library("tether", "..")  # this folder's siblings, whoever includes it
require("tether", library="tether")  # the core: compat, errors, log, ...
require("tether-keys", library="tether")
module("tether/csr.py", base_path="../../lib", opt=3)
