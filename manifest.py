# ruff: noqa: F821  (include/package/module are defined by MicroPython's manifestfile)
# Freezes Tether into a MicroPython image, for any board. A board's manifest
# (boards/<B>/manifest.py) includes its port's manifest and then this file.
# Paths are relative to this file. The asyncio package comes from the port's manifest.
package("tether", base_path="lib")
module("tether_firmware.py", base_path="firmware")
# Frozen boot.py/main.py run in preference to files of the same name on the filesystem, so
# the firmware cannot be broken by a bad copy; settings.json and app.py stay on the filesystem.
module("boot.py", base_path="firmware")
module("main.py", base_path="firmware")
