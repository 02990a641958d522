# ruff: noqa: F821  (metadata/require/package are defined by MicroPython's manifestfile)
# Astarte: tether.astarte (the astarte-device-sdk API: pairing, interfaces, BSON, properties).
#
# Not in an image unless asked (a pip install has them all):
# - certificate authentication (`certauth=True`, tether-certauth): the device's own key and
#   certificate reach the port's TLS as DER without it; an SE05x key (`key="se05x:..."`)
#   needs it, and DeviceMqtt says so when it is made.
# - agent registration with a realm key (register_device_with_private_key: tether-jwt, with
#   tether-rsa): a provisioning step for a host, where the realm's private key belongs; a
#   device is registered before it is flashed (secrets.json holds its credentials secret).
# - key files loaded from DER/PEM (tether-keyload): the device makes its own key and reads
#   it back itself (tether.astarte.certificate).
# - the P-256 comb table (tether-p256table): the key and CSR are made once per device, 4x
#   slower without it (18 ms instead of 5 ms on the unix port).
# - the interface JSON parser (`interface_json=True`, tether-astarte-json): a board reads
#   the compact form (*.ifc) the host precompiles (python -m tools.astarte_ifc).
metadata(description="Tether for Astarte (tether.astarte)")
options.defaults(certauth=False, interface_json=False)

add_library("tether", "..")  # this folder's siblings, whoever includes it
require("tether", library="tether")
require("tether-http", library="tether")  # the pairing API
require("tether-csr", library="tether")  # with tether-keys: the device's key and CSR
require("tether-bson", library="tether")
require("tether-zlib", library="tether")
if options.certauth:
    require("tether-certauth", library="tether")
package(
    "tether/astarte",
    files=(
        "__init__.py",
        "certificate.py",
        "codec.py",
        "device.py",
        "errors.py",
        "iface.py",
        "model.py",
        "pairing.py",
        "pem.py",
        "profile.py",
        "properties.py",
        "sync.py",
    ),
    base_path="../../lib",
    opt=3,
)
if options.interface_json:
    require("tether-astarte-json", library="tether")
