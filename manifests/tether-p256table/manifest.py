# ruff: noqa: F821  (metadata/require/module are defined by MicroPython's manifestfile)
# Building block: the fixed-base comb table of P-256 (4 KB). It only makes k*G faster (a
# key's public point, every ECDSA signature: about 4x); tether.p256 works without it. akenza
# requires it (a JWT signed at every renewal); Astarte signs once per device (key and CSR).
metadata(description="Tether building block: P-256 fixed-base comb table (faster signing)")

add_library("tether", "..")  # this folder's siblings, whoever includes it
require("tether-keys", library="tether")  # tether.p256, which reads it

module("tether/p256_table.py", base_path="../../lib", opt=3)
