# ruff: noqa: F821  (metadata/require/module are defined by MicroPython's manifestfile)
# The firmware (docs/firmware.md): tether_firmware (bring-up), tether_settings (settings),
# tether_diagnostics (loaded only when diagnostics are on).
# Frozen boot.py/main.py run in preference to files of the same name on the filesystem, so
# a bad copy cannot break the firmware; settings.json and app.py stay on the filesystem.
# Which clouds it can run is up to the image's other parts.
metadata(description="Tether firmware: settings, watchdog, WiFi, clock, cloud profile, app")

add_library("tether", "..")  # this folder's siblings, whoever includes it
require("tether", library="tether")  # the core: compat, errors, log, ...

module("tether_firmware.py", base_path="../../firmware", opt=3)
module("tether_settings.py", base_path="../../firmware", opt=3)
module("tether_diagnostics.py", base_path="../../firmware", opt=3)
module("boot.py", base_path="../../firmware", opt=3)
module("main.py", base_path="../../firmware", opt=3)
