# ruff: noqa: F821  (metadata/require/package are defined by MicroPython's manifestfile)
# Building block: an HTTP/1.1 client over asyncio streams (Astarte pairing, downloads).
metadata(description="Tether building block: HTTP/1.1 client")

add_library("tether", "..")  # this folder's siblings, whoever includes it
require("tether", library="tether")  # the core: compat, errors, log, ...
require("tether-tlscause", library="tether")  # tlsctx.explain: why https failed

package(
    "tether", files=("http.py", "http_parse.py", "http_chunked.py"), base_path="../../lib", opt=3
)
