# ruff: noqa: F821  (metadata/require/module are defined by MicroPython's manifestfile)
# Building block: DER and PEM (tether.der): read and write ASN.1 DER, PEM armour. Keys and
# CSRs (tether-keys, tether-csr) and certificate authentication (tether-certauth) use it.
metadata(description="Tether building block: DER / PEM")

add_library("tether", "..")  # this folder's siblings, whoever includes it
require("tether", library="tether")  # the core: compat, errors, ...

module("tether/der.py", base_path="../../lib", opt=3)
