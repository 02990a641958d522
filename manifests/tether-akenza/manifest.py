# ruff: noqa: F821  (metadata/require/package are defined by MicroPython's manifestfile)
# akenza: tether.akenza (client, JWT credentials, key loading, refusal message, firmware
# profile).
metadata(description="Tether for akenza (tether.akenza): MQTT with JWT device credentials")

add_library("tether", "..")  # this folder's siblings, whoever includes it
require("tether", library="tether")
# The JWT is written by tether.akenza.credentials itself (no tether-jwt / tether-encoding);
# loading a software key needs tether.keys, signing ES256 p256 with RFC 6979 (tether.hmac).
require("tether-keys", library="tether")
require("tether-keyload", library="tether")  # the key file: DER or PEM
require("tether-p256table", library="tether")  # an ES256 signature at every renewal
require("tether-rsa", library="tether")  # RS256 keys
require("tether-certauth", library="tether")  # the key: path, DER or PEM (tether.creds)
require("tether-hmac", library="tether")
package("tether/akenza", base_path="../../lib", opt=3)  # every module of the folder
