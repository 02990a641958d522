# ruff: noqa: F821  (include/options are defined by MicroPython's manifestfile)
# Frozen-image manifest for PORTENTA_H7: the port's own manifest, then Tether
# (core, the clouds picked, firmware). Used by `make BOARD=PORTENTA_H7 firmware`
# (tools/firmware.py generates a manifest that includes this one); see docs/boards.md.
# Paths are relative to this file.
options.defaults(clouds=("arduino",), certauth=False)  # --clouds a,b / --[no-]certauth
# certauth=False: password auth. The SE05x (and key/cert files) need certauth=True
# (`make firmware CERTAUTH=1`): 13 KB more flash (docs/boards.md, "Flash").
include("$(BOARD_DIR)/manifest.py")
wifi = ("cyw43",)  # its radio (board.json "wifi"): the other drivers stay out
include("../../manifest.py", clouds=options.clouds, certauth=options.certauth, wifi=wifi)
