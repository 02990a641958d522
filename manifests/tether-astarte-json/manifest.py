# ruff: noqa: F821  (metadata/require/module are defined by MicroPython's manifestfile)
# Building block: Astarte's interface JSON parser (tether.astarte.interfaces: strict checks,
# errors that name the field). A board reads the compact form the host writes
# (python -m tools.astarte_ifc interfaces/ -o board/interfaces/) without it; an image that
# reads interface JSON on the device asks for it (`interface_json=True` for tether-astarte).
metadata(description="Tether for Astarte: the interface JSON parser")

add_library("tether", "..")  # this folder's siblings, whoever includes it
require("tether-astarte", library="tether")

module("tether/astarte/interfaces.py", base_path="../../lib", opt=3)
