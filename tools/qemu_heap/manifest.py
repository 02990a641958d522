# ruff: noqa: F821  (include/module are defined by MicroPython's manifestfile)
# What tools/qemu_heap.py freezes into the qemu image: MicroPython's asyncio package (the
# qemu port does not freeze it), Tether's core and Arduino component as a board image has
# them (the project's manifest.py, without the firmware), and the heap scenario.
include("$(MPY_DIR)/extmod/asyncio")
include("../../manifest.py", clouds=("arduino",), firmware=False)
module("qemu_scenario.py")
module("qemu_probe.py")
