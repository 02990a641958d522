# ruff: noqa: F821  (include/options are defined by MicroPython's manifestfile)
# Frozen-image manifest for ESP32: the port's own manifest, then Tether
# (core, the clouds picked, firmware). Used by `make BOARD=ESP32 firmware`
# (tools/firmware.py generates a manifest that includes this one); see docs/boards.md.
# Paths are relative to this file.
options.defaults(clouds=("arduino",), certauth=False)  # --clouds a,b / --[no-]certauth
# certauth=False: password auth; key/cert files need certauth=True (`CERTAUTH=1`)
include("$(PORT_DIR)/boards/manifest.py")  # ESP32_GENERIC has no board manifest of its own
wifi = ("esp32",)  # its radio (board.json "wifi"): the other drivers stay out
include("../../manifest.py", clouds=options.clouds, certauth=options.certauth, wifi=wifi)
