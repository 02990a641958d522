"""Flash per component per board: what the core, each cloud and the firmware add.

    .venv/bin/python -m bench.flash [--markdown]
    .venv/bin/python -m bench.flash --mpy-dir DIR    + frozen into a real 32-bit ARM image

Without a toolchain (the default, what `make bench` runs): the .mpy bytes of each
component's own modules (tools/components.py), compiled with mpy-cross for each board's
architecture, and the sum a board carries for the core + one cloud (with the building
blocks it requires) + the firmware, against the budget of issue 10: at most 90 KB of flash
for the core and one cloud.

With `--mpy-dir` (a MicroPython checkout, arm-none-eabi-gcc): the qemu port's MPS2_AN385
(Cortex-M3) is built with each manifest frozen in and the growth of the image's text
segment is measured: the flash a 32-bit board really spends. Frozen bytecode is the same
on every 32-bit port (only native code differs), so the figure holds for the ESP32, the
Portenta (Cortex-M7) and the Nano RP2040 (Cortex-M0+) alike. Its ratio to the .mpy sum is
printed too, so the no-toolchain figure can be read as flash.

`run()` returns the rows.
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tools import boards, bundle, components  # noqa: E402

BUDGET_KB = 90  # issue 10: an image with the core and one cloud adds at most this
BOARDS = ("ESP32", "PORTENTA_H7", "NANO_RP2040_CONNECT")


def _mpy_sizes(arch, tmp):
    """{target: .mpy bytes} of every file of every component, for one architecture."""
    out = {}
    for name in components.names():
        for src, target in components.evaluate(name).files():
            if target in out or target in ("boot.py", "main.py"):
                continue
            dst = Path(tmp) / arch / (target[:-3] + ".mpy")
            bundle.compile_module(Path(src), dst, arch, target)
            out[target] = dst.stat().st_size
    for name in ("boot.py", "main.py"):  # frozen as bytecode, shipped in bundles as source
        dst = Path(tmp) / arch / (name[:-3] + ".mpy")
        bundle.compile_module(ROOT / "firmware" / name, dst, arch, name)
        out[name] = dst.stat().st_size
    return out


def mpy_rows():
    """One row per component: kind, own modules, .mpy bytes per board; then one row per
    cloud: core + cloud (+ its blocks) and + firmware, against the budget."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        per_arch = {}
        for b in BOARDS:
            arch = boards.load(b)["mpy_arch"]
            if arch not in per_arch:
                per_arch[arch] = _mpy_sizes(arch, tmp)
        arch_of = {b: boards.load(b)["mpy_arch"] for b in BOARDS}
        for name in components.names():
            own = components.own_targets(name)
            row = {"component": name, "kind": components.kind(name), "modules": len(own)}
            for b in BOARDS:
                row[b] = sum(per_arch[arch_of[b]][t] for t in own)
            rows.append(row)
        for cloud in components.clouds():
            for firmware in (False, True):
                targets = [t for _, t in components.image((cloud,), firmware)]
                label = "core + %s%s" % (cloud, " + firmware" if firmware else "")
                row = {"component": label, "kind": "total", "modules": len(targets)}
                for b in BOARDS:
                    row[b] = sum(per_arch[arch_of[b]][t] for t in targets)
                if not firmware:  # the budget is for the core and one cloud
                    row["budget_kb"] = BUDGET_KB
                    row["within"] = max(row[b] for b in BOARDS) <= BUDGET_KB * 1024
                rows.append(row)
    return rows


# -- frozen into a real 32-bit image (qemu MPS2_AN385) -------------------------------------


def _text_size(elf):
    out = subprocess.run(
        ["arm-none-eabi-size", str(elf)], capture_output=True, text=True, check=True
    ).stdout
    return int(out.splitlines()[1].split()[0])


def _manifest(path, requires):
    lines = ['include("$(MPY_DIR)/extmod/asyncio")']
    if requires:
        lines.append("add_library(%r, %r)" % ("tether", str(ROOT / "manifests")))
        lines += ["require(%r, library=%r)" % (r, "tether") for r in requires]
    path.write_text("\n".join(lines) + "\n")
    return path


def frozen_rows(mpy_dir, jobs=2, build=None):
    """Text bytes of MPS2_AN385 images: asyncio only, then + core, + each cloud, + firmware.
    One build folder, rebuilt with each manifest (only frozen_content.c changes)."""
    mpy_dir = Path(mpy_dir).resolve()
    port = mpy_dir / "ports" / "qemu"
    work = Path(build or ROOT / "build" / "bench-flash")
    work.mkdir(parents=True, exist_ok=True)
    # micropython-lib is not needed by these manifests: an empty stand-in when it is absent
    lib = mpy_dir / "lib" / "micropython-lib"
    if not (lib / "README.md").exists():
        lib = work / "no-micropython-lib"
        lib.mkdir(exist_ok=True)
        (lib / "README.md").write_text("stand-in: these manifests need no micropython-lib\n")
    steps = [("asyncio only", [])]
    steps.append(("core", ["tether"]))
    for cloud in components.clouds():
        steps.append(("core + " + cloud, ["tether", "tether-" + cloud]))
        steps.append(
            ("core + %s + firmware" % cloud, ["tether", "tether-" + cloud, "tether-firmware"])
        )
    blocks = [n for n in components.names() if components.kind(n) == "block"]
    steps.append(("core + every building block", ["tether"] + blocks))
    rows = []
    base = None
    for label, requires in steps:
        manifest = _manifest(work / "manifest.py", requires)
        # regenerated only when a frozen file is newer than it: force it (tools/firmware.py)
        (work / "build" / "frozen_content.c").unlink(missing_ok=True)
        cmd = [
            "make",
            "-C",
            str(port),
            "BOARD=MPS2_AN385",
            "BUILD=%s" % (work / "build"),
            "FROZEN_MANIFEST=%s" % manifest,
            "MPY_LIB_DIR=%s" % lib,
            "MICROPY_PY_BTREE=0",
            "-j%d" % jobs,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError("qemu build failed for %s:\n%s" % (label, proc.stderr[-2000:]))
        text = _text_size(work / "build" / "firmware.elf")
        base = text if base is None else base
        rows.append({"image": label, "text": text, "added": text - base})
    return rows


def run(mpy_dir=None, markdown=False):
    rows = mpy_rows()
    fmt = "| %s |" if markdown else "%s"
    sep = " | " if markdown else "  "
    head = ["component", "kind", "modules"] + [b for b in BOARDS] + ["90 KB budget"]
    print(fmt % sep.join(head))
    if markdown:
        print("|" + "---|" * len(head))
    for r in rows:
        cells = [r["component"], r["kind"], str(r["modules"])]
        cells += ["%.1f KB" % (r[b] / 1024) for b in BOARDS]
        cells.append(("ok" if r["within"] else "OVER") if "within" in r else "")
        print(fmt % sep.join(cells))
    if mpy_dir:
        frozen = frozen_rows(mpy_dir)
        mpy = {r["component"]: r for r in rows}
        print()
        print("frozen into qemu MPS2_AN385 (Cortex-M3, 32-bit): text bytes added")
        for r in frozen:
            line = "%-32s %8d  +%6.1f KB" % (r["image"], r["text"], r["added"] / 1024)
            ref = mpy.get(r["image"]) or (mpy.get("tether") if r["image"] == "core" else None)
            if ref and r["added"]:
                line += "  (x%.2f the .mpy)" % (r["added"] / ref["PORTENTA_H7"])
            print(line)
        rows += frozen
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.flash", description=__doc__.split("\n")[0])
    ap.add_argument("--mpy-dir", default=os.environ.get("MPY_DIR") or None)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    run(args.mpy_dir, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
