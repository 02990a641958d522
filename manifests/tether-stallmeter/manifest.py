# ruff: noqa: F821  (metadata/require/module are defined by MicroPython's manifestfile)
# Instrument, not a feature: measures event-loop stalls for the soak test and the benches.
# No cloud requires it, so no image carries it unless asked for.
metadata(description="Tether instrument: event-loop stall meter (soak, benches)")

add_library("tether", "..")  # this folder's siblings, whoever includes it
require("tether", library="tether")  # the core: compat, errors, log, ...

module("tether/stallmeter.py", base_path="../../lib", opt=3)
