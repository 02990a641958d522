# ruff: noqa: F821  (metadata/options/add_library/require are defined by MicroPython's manifestfile)
# Freezes Tether into a MicroPython image: the core, the clouds you pick and the firmware.
# A board's manifest (boards/<B>/manifest.py) includes its port's manifest and then this
# file; `python -m tools.bundle firmware BOARD --clouds arduino,azure` picks the clouds.
#
#     include("path/to/tether/manifest.py", clouds=("arduino",), firmware=True)
#
# Each component is a manifest in manifests/<name>/ (core "tether", one "tether-<cloud>" per
# cloud, building blocks such as "tether-jwt"), found by MicroPython's require(). CPython-only
# modules (tether/hsm.py) are in none; the unix port's fakes only in "tether-fakes".
metadata(description="Tether: core, the chosen clouds, the firmware")
options.defaults(clouds=("arduino",), firmware=True, fakes=False)

add_library("tether", "manifests")
require("tether", library="tether")
for cloud in options.clouds:
    require("tether-" + cloud, library="tether")
if options.firmware:
    require("tether-firmware", library="tether")
if options.fakes:
    require("tether-fakes", library="tether")  # the unix port only: fake WiFi, RTC, SE05x
