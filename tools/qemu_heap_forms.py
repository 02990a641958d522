"""The other forms of tools/qemu_heap.py's measurement: the scenario on the unix port
(64-bit), Tether as .mpy files (loaded into RAM, or run in place from a ROMFS image), and
the peer (arduino-iot-cloud-py) frozen into its own image; and the MICROPY_HEAP_SIZE
bisection over real builds. Split from tools/qemu_heap.py,
which re-exports its names; it builds on tools/qemu_image.py."""

import os
import subprocess
from pathlib import Path

from tools import qemu_image


def run_unix(lib, pool=0, timeout_s=120, call=None):
    """The same scenario on the MicroPython unix port (64-bit), the library and the
    scenario taken from `lib` (.mpy or .py), asyncio from the port's frozen modules."""
    env = dict(os.environ)
    env["MICROPYPATH"] = ".frozen:" + str(lib)
    call = call or "main(%d)" % pool
    code = "import qemu_scenario; qemu_scenario." + call
    try:
        p = subprocess.run(
            [qemu_image.micropython_unix(), "-X", "heapsize=4m", "-c", code],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            errors="replace",
        )
        return qemu_image.parse(p.stdout + p.stderr)
    except subprocess.TimeoutExpired as exc:
        text = exc.stdout or ""
        if isinstance(text, bytes):
            text = text.decode(errors="replace")
        return qemu_image.parse(text + "\nQH result FAIL timeout")


def compile_lib(dst, scenario=True, lib=None):
    """lib/tether (and the scenario) compiled to .mpy, what a board's filesystem holds
    after `mip install` (bytecode only: the same files for every architecture)."""
    dst = Path(dst)
    lib = Path(lib or qemu_image.ROOT / "lib")
    files = [(f, f.relative_to(lib)) for f in (lib / "tether").rglob("*.py")]
    if scenario:
        files.append((qemu_image.HERE / "qemu_scenario.py", Path("qemu_scenario.py")))
    for src, rel in files:
        out = dst / rel.with_suffix(".mpy")
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([qemu_image.mpy_cross(), "-o", str(out), str(src)], check=True, timeout=60)
    return dst


def romfs_image(mpy_dir, dst, lib=None):
    """A ROMFS image (the qemu board's partition 0) of lib/tether as .mpy, made with the
    tree's own mpremote romfs writer; returns its path."""
    import contextlib
    import importlib.util
    import io

    dst = Path(dst)
    files = compile_lib(dst / "files", scenario=False, lib=lib)
    spec = importlib.util.spec_from_file_location(
        "_mpy_romfs", Path(mpy_dir) / "tools" / "mpremote" / "mpremote" / "romfs.py"
    )
    romfs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(romfs)
    with contextlib.redirect_stdout(io.StringIO()):  # it prints the tree
        data = romfs.make_romfs(str(files), mpy_cross=False)
    img = dst / "romfs.img"
    img.write_bytes(data)
    return img


PEER_FILES = (
    ("arduino_iot_cloud", "package"),
    ("senml", "package"),
    ("cbor2", "package"),
    ("logging.py", "module"),
)


def peer_manifest(peer_dir):
    """A manifest freezing arduino-iot-cloud-py from peer_dir (which holds
    arduino_iot_cloud/, senml/, cbor2/ and logging.py: the peer's src/ and micropython-lib's
    packages), asyncio and the peer scenario; written to build/qemu/peer/manifest.py."""
    peer_dir = Path(peer_dir).resolve()
    lines = ['include("$(MPY_DIR)/extmod/asyncio")']
    for name, kind in PEER_FILES:
        if not (peer_dir / name).exists():
            raise qemu_image.QemuHeapError("%s has no %s" % (peer_dir, name))
        lines.append('%s("%s", base_path="%s")' % (kind, name, peer_dir))
    for name in ("qemu_scenario.py", "qemu_peer.py"):
        lines.append('module("%s", base_path="%s")' % (name, qemu_image.HERE))
    out = qemu_image.BUILD / "peer" / "manifest.py"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    return out


def measure_peer(mpy_dir, peer_dir, step=512):
    """The peer's figures on its own image (one try per probe: a failing run of the peer
    retries forever, so each costs the whole timeout)."""
    elf = qemu_image.build(mpy_dir, manifest=peer_manifest(peer_dir), variant="-peer")

    def runner(pool):
        return qemu_image.run(elf, call="main(%d)" % pool, module="qemu_peer", timeout_s=90)

    full = runner(0)
    if not qemu_image.completes(full):
        raise qemu_image.QemuHeapError(
            "the peer fails with the whole heap:\n" + full["raw"][-3000:]
        )
    lo, hi = 8 * 1024, full["pool"]
    probes = []
    while hi - lo > step:
        mid = (lo + hi) // 2 // 16 * 16
        r = runner(mid)
        probes.append((mid, r.get("pool"), r.get("result")))
        if qemu_image.completes(r):
            hi = mid
        else:
            lo = mid
    res = qemu_image.figures(full, hi)
    res["probes"] = probes
    return res


def smallest_heap_size(mpy_dir, manifest, guess, step=256, board=None, probes=None):
    """Smallest MICROPY_HEAP_SIZE (bytes, multiple of `step`) whose image completes the
    scenario with its whole heap, bisected over real builds (each relinks in seconds)."""
    board = board or qemu_image.BOARD

    def ok(size):
        for _ in range(2):
            r = qemu_image.run(qemu_image.build(mpy_dir, size, board, manifest=manifest))
            if probes is not None:
                probes.append((size, r.get("pool"), r.get("result")))
            if qemu_image.completes(r):
                return True
        return False

    lo = (guess - 4096) // step * step
    hi = lo + 8192
    while ok(lo):
        lo -= 4096
    while not ok(hi):
        lo, hi = hi, hi + 4096
    while hi - lo > step:
        mid = (lo + hi) // 2 // step * step
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi
