# ruff: noqa: F821  (metadata/require/module are defined by MicroPython's manifestfile)
# Building block: software private keys (a Signer: P-256 ECDSA; RSA with the block
# tether-rsa). Loading them from DER/PEM is the block tether-keyload; the P-256 comb table
# the block tether-p256table (faster signing).
metadata(description="Tether building block: software signing keys (P-256, RSA)")

add_library("tether", "..")  # this folder's siblings, whoever includes it
require("tether", library="tether")  # the core: compat, errors, log, ...
require("tether-der", library="tether")  # keys are DER/PEM
require("tether-hmac", library="tether")  # RFC 6979 nonces in p256 use HMAC-SHA256

package("tether", files=("keys.py", "p256.py"), base_path="../../lib", opt=3)
