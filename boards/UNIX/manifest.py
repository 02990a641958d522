# ruff: noqa: F821  (include/options are defined by MicroPython's manifestfile)
# Frozen-image manifest for the unix port (`make BOARD=unix firmware MPY_DIR=...`): asyncio
# and Tether with the fake WiFi / RTC / SE05x of the unix port, so the firmware runs
# without hardware. The variant's own manifest is not included: it needs micropython-lib
# (mip, ssl), which Tether does not use. Paths are relative to this file.
options.defaults(clouds=("arduino",), certauth=True)  # --clouds a,b / --[no-]certauth
# certauth: every credential kind, for the tests and the demo
include("$(MPY_DIR)/extmod/asyncio")
include("../../manifest.py", clouds=options.clouds, certauth=options.certauth, fakes=True)
