# ruff: noqa: F821  (metadata/require/module are defined by MicroPython's manifestfile)
# Building block: tether.cloud.requests, request/response correlation on the cloud-client
# base (a request id -> a waiter, with a timeout and a bound). A base mechanism kept with
# the base in the source tree, but carried only by the clouds that correlate replies
# (Azure: twin $rid, DPS polling), not by every image.
metadata(description="Tether building block: request/response correlation (cloud.requests)")

add_library("tether", "..")  # this folder's siblings, whoever includes it
require("tether", library="tether")  # the core: the cloud-client base

module("tether/cloud/requests.py", base_path="../../lib", opt=3)
