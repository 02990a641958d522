# ruff: noqa: F821  (metadata/require/package are defined by MicroPython's manifestfile)
# akenza: tether.akenza (client, JWT credentials, refusal message, firmware profile).
metadata(description="Tether for akenza (tether.akenza): MQTT with JWT device credentials")

add_library("tether", "..")  # this folder's siblings, whoever includes it
require("tether", library="tether")
require("tether-jwt", library="tether")  # with tether-keys (P-256, RSA) and tether-encoding
package("tether/akenza", base_path="../../lib")  # every module of the folder
