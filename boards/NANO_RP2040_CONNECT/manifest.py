# ruff: noqa: F821  (include/options are defined by MicroPython's manifestfile)
# Frozen-image manifest for NANO_RP2040_CONNECT: the port's own manifest, then Tether
# (core, the clouds picked, firmware). Used by `make BOARD=NANO_RP2040_CONNECT firmware`
# (tools/firmware.py generates a manifest that includes this one); see docs/boards.md.
# Paths are relative to this file.
options.defaults(clouds=("arduino",), certauth=False)  # --clouds a,b / --[no-]certauth
# certauth=False: password auth; key/cert files need certauth=True (`CERTAUTH=1`)
include("$(BOARD_DIR)/manifest.py")
wifi = ("nina",)  # its radio (board.json "wifi"): the other drivers stay out
include("../../manifest.py", clouds=options.clouds, certauth=options.certauth, wifi=wifi)
