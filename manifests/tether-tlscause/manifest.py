# ruff: noqa: F821  (metadata/require/module are defined by MicroPython's manifestfile)
# Building block: tether.tlscause, the cause of a TLS failure in words (tlsctx.explain).
# Required by what reports a refused connection to a person (tether-http, tether-sap); an
# image without them (Arduino, Azure) leaves the table out.
metadata(description="Tether building block: TLS failures explained (tlsctx.explain)")

add_library("tether", "..")  # this folder's siblings, whoever includes it
require("tether", library="tether")  # the core: tlsctx

module("tether/tlscause.py", base_path="../../lib", opt=3)
