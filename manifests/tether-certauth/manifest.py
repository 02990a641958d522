# ruff: noqa: F821  (metadata/require/package are defined by MicroPython's manifestfile)
# Building block: certificate authentication. Keys, certificates and CAs from files, DER or
# PEM (tether.creds, tether.certs, tether.der), the Signer interface (tether.signer) and the
# SE05x secure element (tether.hal.se05x): mutual TLS, signed tokens, CSRs.
# akenza and SAP require it. Arduino, Azure and Astarte work without it (password, SAS;
# Astarte's own key and certificate go to the port's TLS as DER): an image leaves it out
# unless asked, `certauth=True` in manifest.py's options (an SE05x key needs it). Without
# it tether.nocert loads DER CA files and refuses keys and certificates with an error
# naming this component (Astarte: tether.astarte.sync). tether.der is the block tether-der.
metadata(description="Tether building block: certificate authentication (mTLS, PEM, SE05x)")

add_library("tether", "..")  # this folder's siblings, whoever includes it
require("tether", library="tether")  # the core: compat, errors, tlsctx, ...
require("tether-der", library="tether")

package(
    "tether",
    files=("creds.py", "certs.py", "signer.py", "hal/se05x.py"),
    base_path="../../lib",
    opt=3,
)
