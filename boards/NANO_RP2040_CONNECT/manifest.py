# ruff: noqa: F821  (include/options are defined by MicroPython's manifestfile)
# Frozen-image manifest for NANO_RP2040_CONNECT: the port's own manifest, then Tether
# (core, the clouds picked, firmware). Used by `make BOARD=NANO_RP2040_CONNECT firmware`
# (tools/firmware.py generates a manifest that includes this one); see docs/boards.md.
# Paths are relative to this file.
options.defaults(clouds=("arduino",))  # tools.bundle firmware --clouds a,b passes others
include("$(BOARD_DIR)/manifest.py")
include("../../manifest.py", clouds=options.clouds)
