# ruff: noqa: F821  (include/package/module are defined by MicroPython's manifestfile)
# Frozen-image manifest for PORTENTA_H7: the port's own manifest, then Tether
# (library + firmware). Used by `make BOARD=PORTENTA_H7 firmware MPY_DIR=...`
# (FROZEN_MANIFEST=this file); see docs/boards.md. Paths are relative to this file.
include("$(BOARD_DIR)/manifest.py")
include("../../manifest.py")
