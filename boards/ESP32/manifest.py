# ruff: noqa: F821  (include/package/module are defined by MicroPython's manifestfile)
# Frozen-image manifest for ESP32: the port's own manifest, then Tether
# (library + firmware). Used by `make BOARD=ESP32 firmware MPY_DIR=...`
# (FROZEN_MANIFEST=this file); see docs/boards.md. Paths are relative to this file.
include("$(PORT_DIR)/boards/manifest.py")  # ESP32_GENERIC has no board manifest of its own
include("../../manifest.py")
