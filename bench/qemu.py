"""Heap of the issue-10 scenario on a 32-bit board (MicroPython's qemu port, Cortex-M3) beside
the 64-bit unix port, the same scenario script everywhere.

    MPY_DIR=/path/to/micropython .venv/bin/python -m bench.qemu [--no-builds] [--step N]

Columns: the unix port with Tether as .mpy (what CI measures); the qemu board with Tether as
.mpy loaded into RAM (a board after `mip install`), as .mpy in the ROMFS partition (bytecode
run in place), and frozen into the image. The scenario and the method: tools/qemu_heap.py and
tools/qemu_heap/qemu_scenario.py. Without a MicroPython tree (MPY_DIR) only the unix column
is measured. `run()` returns the rows (figure, unix, mpy, romfs, frozen, unit).
"""

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tools import qemu_heap  # noqa: E402

COLUMNS = ("unix", "mpy", "romfs", "frozen")
HEADS = ("unix64 .mpy", "qemu .mpy", "qemu romfs", "qemu frozen")
ROWS = (
    ("heap at start (interpreter, scenario)", "heap_base"),
    ("heap: import tether.arduino", "import"),
    ("heap: + client, 10 variables", "registered"),
    ("heap: connected, discovery done", "heap_connected"),
    ("heap: after 20 echoed writes", "heap_done"),
    ("smallest GC pool for the scenario", "smallest_pool"),
)


def _unix_only(step):
    tmp = tempfile.mkdtemp(prefix="tether-qemu-unix-")
    try:
        lib = qemu_heap.compile_lib(Path(tmp) / "mpy")
        pool, full = qemu_heap.smallest_pool(lambda n: qemu_heap.run_unix(lib, n), step=step)
        return {"unix": qemu_heap.figures(full, pool)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(mpy_dir=None, builds=True, step=256):
    d = qemu_heap.find_mpy_dir(mpy_dir)
    res = qemu_heap.measure(d, step, builds) if d is not None else _unix_only(step)
    rows = []
    for label, key in ROWS:
        rows.append((label,) + tuple(res.get(c, {}).get(key) for c in COLUMNS) + ("B",))
    size = res.get("frozen", {}).get("smallest_heap_size")
    if size:
        rows.append(("smallest MICROPY_HEAP_SIZE (real builds)", None, None, None, size, "B"))
    print("%-42s" % "figure" + "".join("%13s" % h for h in HEADS) + "  unit")
    for r in rows:
        cells = "".join("%13s" % ("-" if v is None else v) for v in r[1:5])
        print("%-42s%s  %s" % (r[0], cells, r[5]))
    if d is None:
        print("qemu columns skipped: give MPY_DIR=/path/to/micropython (a source tree)")
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--mpy-dir", default=None)
    ap.add_argument("--no-builds", action="store_true", help="no MICROPY_HEAP_SIZE bisection")
    ap.add_argument("--step", type=int, default=256)
    a = ap.parse_args()
    run(a.mpy_dir, not a.no_builds, a.step)
