# ruff: noqa: F821  (metadata/options/add_library/require are defined by MicroPython's manifestfile)
# Freezes Tether into a MicroPython image: the core, the clouds you pick and the firmware.
# A board's manifest (boards/<B>/manifest.py) includes its port's manifest and then this
# file; `python -m tools.bundle firmware BOARD --clouds arduino,azure` picks the clouds.
#
#     include("path/to/tether/manifest.py", clouds=("arduino",), firmware=True, certauth=False)
#
# certauth=True adds certificate authentication (tether-certauth: mutual TLS with DER/PEM
# files or an SE05x key, PEM CAs): 14 KB that password (Arduino) and SAS (Azure) devices do
# not need, nor Astarte unless its key is in an SE05x. akenza and SAP require it whatever
# this says. interface_json=True adds Astarte's interface JSON parser (tether-astarte-json):
# without it a board reads the compact *.ifc form, which `make deploy` writes from the JSON.
#
# Each component is a manifest in manifests/<name>/ (core "tether", one "tether-<cloud>" per
# cloud, building blocks such as "tether-jwt"), found by MicroPython's require(). CPython-only
# modules (tether/hsm.py) are in none; the unix port's fakes only in "tether-fakes".
metadata(description="Tether: core, the chosen clouds, the firmware")
options.defaults(
    clouds=("arduino",),
    firmware=True,
    fakes=False,
    certauth=False,
    interface_json=False,
    wifi=("esp32", "cyw43", "nina"),
)

add_library("tether", "manifests")
require("tether", library="tether", wifi=options.wifi)  # a board needs its WiFi driver only
for cloud in options.clouds:  # Arduino, Azure and Astarte take certauth as an option
    require(
        "tether-" + cloud,
        library="tether",
        certauth=options.certauth,
        interface_json=options.interface_json,  # Astarte's option; the others ignore it
    )
if options.certauth:
    require("tether-certauth", library="tether")
if options.firmware:
    require("tether-firmware", library="tether")
if options.fakes:
    require("tether-fakes", library="tether")  # the unix port only: fake WiFi, RTC, SE05x
