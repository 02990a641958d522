# ruff: noqa: F821  (metadata/require/module are defined by MicroPython's manifestfile)
# Building block: software private keys (DER/PEM -> a Signer: P-256 ECDSA, RSA).
metadata(description="Tether building block: software signing keys (P-256, RSA)")

add_library("tether", "..")  # this folder's siblings, whoever includes it
require("tether", library="tether")  # the core: compat, errors, log, ...
require("tether-certauth", library="tether")  # tether.der; keys are loaded by tether.creds
require("tether-hmac", library="tether")  # RFC 6979 nonces in p256 use HMAC-SHA256

package(
    "tether", files=("keys.py", "p256.py", "p256_table.py", "rsa.py"), base_path="../../lib", opt=3
)
