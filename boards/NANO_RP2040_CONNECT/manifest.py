# ruff: noqa: F821  (include/package/module are defined by MicroPython's manifestfile)
# Frozen-image manifest for NANO_RP2040_CONNECT: the port's own manifest, then Tether
# (library + firmware). Used by `make BOARD=NANO_RP2040_CONNECT firmware MPY_DIR=...`
# (FROZEN_MANIFEST=this file); see docs/boards.md. Paths are relative to this file.
include("$(BOARD_DIR)/manifest.py")
include("../../manifest.py")
