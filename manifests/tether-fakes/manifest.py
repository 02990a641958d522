# ruff: noqa: F821  (metadata/require/package are defined by MicroPython's manifestfile)
# The fake WiFi radio, RTC and SE05x of the unix port (tests, demos, the simulated board).
# Never in a board's image or .mpy bundle: only the unix image and the simulated board.
metadata(description="Tether fakes for the unix port (WiFi, RTC, SE05x)")

add_library("tether", "..")  # this folder's siblings, whoever includes it
require("tether", library="tether")  # the core: compat, errors, log, ...

package("tether", files=("hal/fakes.py", "hal/fake_se05x.py"), base_path="../../lib", opt=3)
