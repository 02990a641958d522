"""Flash per component per board: what the core, each cloud and the firmware add.

    .venv/bin/python -m bench.flash [--markdown]
    .venv/bin/python -m bench.flash --mpy-dir DIR    + frozen into a real 32-bit ARM image
    .venv/bin/python -m bench.flash --mpy-dir DIR --portenta   the real Portenta H7 image

Without a toolchain (the default, what `make bench` runs): the .mpy bytes of each
component's own modules (tools/components.py), compiled with mpy-cross for each board's
architecture at the manifests' optimisation level (opt=3), the core with the board's own
WiFi driver only, and the sum a board carries for the core + one cloud (with the building
blocks it requires) + the firmware, against the budget of issue 10: at most 90 KB of flash
for the core and one cloud. Arduino, Azure and Astarte are counted without and with
certificate authentication (tether-certauth, which akenza and SAP require); an Astarte image
leaves out, unless asked, the blocks only some devices use (tether-certauth for an SE05x
key, tether-jwt + tether-rsa for agent registration, tether-p256table, tether-astarte-json:
their own rows give what each adds). The last row is each board's default image
(boards/<B>/manifest.py: password auth on all three).

With `--mpy-dir` (a MicroPython checkout, arm-none-eabi-gcc): the qemu port's MPS2_AN385
(Cortex-M3) is built with each manifest frozen in and the growth of the image's text
segment is measured: the flash a 32-bit board really spends. Frozen bytecode is the same
on every 32-bit port (only native code differs), so the figure holds for the ESP32, the
Portenta (Cortex-M7) and the Nano RP2040 (Cortex-M0+) alike. Its ratio to the .mpy sum is
printed too, so the no-toolchain figure can be read as flash.

With `--portenta` instead (MPY_DIR with the stm32 port's submodules checked out): the real
ARDUINO_PORTENTA_H7 image is built without Tether, with the Portenta's default image
(password auth) and with certificate auth, and the room left in its 1280 KiB firmware
region is printed (issue 10: at least 40 KB free). The qemu rows are skipped then: after
the first build each Portenta image takes seconds, the qemu series minutes.

`run()` returns the rows.
"""

import argparse
import os
import shutil
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
    opts = components.opt_levels()  # what the manifests freeze with (opt=3)
    for name in components.names():
        for src, target in components.evaluate(name).files():
            if target in out or target in ("boot.py", "main.py"):
                continue
            dst = Path(tmp) / arch / (target[:-3] + ".mpy")
            bundle.compile_module(Path(src), dst, arch, target, opts.get(target))
            out[target] = dst.stat().st_size
    for name in ("boot.py", "main.py"):  # frozen as bytecode, shipped in bundles as source
        dst = Path(tmp) / arch / (name[:-3] + ".mpy")
        bundle.compile_module(ROOT / "firmware" / name, dst, arch, name, opts.get(name))
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
        wifi_of = {b: (boards.load(b)["wifi"],) for b in BOARDS}  # a board's own driver
        for name in components.names():
            own = components.own_targets(name)
            row = {"component": name, "kind": components.kind(name), "modules": len(own)}
            for b in BOARDS:
                if name == components.CORE:
                    own = components.evaluate(name, wifi=wifi_of[b]).targets()
                row[b] = sum(per_arch[arch_of[b]][t] for t in own)
            rows.append(row)
        for cloud in components.clouds():
            plain = components.image((cloud,), False)
            for certauth in (False, True):
                if certauth and components.image((cloud,), False, certauth=True) == plain:
                    continue  # the cloud requires it: the row above has it already
                for firmware in (False, True):
                    label = "core + %s%s%s" % (
                        cloud,
                        " + certauth" if certauth else "",
                        " + firmware" if firmware else "",
                    )
                    row = {"component": label, "kind": "total"}
                    for b in BOARDS:
                        files = components.image((cloud,), firmware, False, certauth, wifi_of[b])
                        row[b] = sum(per_arch[arch_of[b]][t] for _, t in files)
                        row["modules"] = len(files)
                    if not firmware:  # the budget is for the core and one cloud
                        row["budget_kb"] = BUDGET_KB
                        row["within"] = max(row[b] for b in BOARDS) <= BUDGET_KB * 1024
                    rows.append(row)
        row = {"component": "board's default image", "kind": "image", "modules": 0}
        for b in BOARDS:
            targets = [t for _, t in components.board_image(boards.load(b)["dir"])]
            row[b] = sum(per_arch[arch_of[b]][t] for t in targets)
            row["modules"] = max(row["modules"], len(targets))
        rows.append(row)
    return rows


# -- frozen into a real 32-bit image (qemu MPS2_AN385) -------------------------------------


def _text_size(elf):
    out = subprocess.run(
        ["arm-none-eabi-size", str(elf)], capture_output=True, text=True, check=True
    ).stdout
    return int(out.splitlines()[1].split()[0])


def _manifest(path, requires, certauth=False):
    lines = ['include("$(MPY_DIR)/extmod/asyncio")']
    if requires:
        lines.append("add_library(%r, %r)" % ("tether", str(ROOT / "manifests")))
        lines += [
            "require(%r, library=%r, certauth=%r)" % (r, "tether", certauth) for r in requires
        ]
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
    steps = [("asyncio only", [], False)]
    steps.append(("core", ["tether"], False))
    for cloud in components.clouds():
        plain = components.image((cloud,), False)
        for certauth in (False, True):
            if certauth and components.image((cloud,), False, certauth=True) == plain:
                continue
            label = "core + " + cloud + (" + certauth" if certauth else "")
            requires = ["tether", "tether-" + cloud]
            steps.append((label, requires, certauth))
            steps.append((label + " + firmware", requires + ["tether-firmware"], certauth))
    blocks = [  # a cloud's own block (tether-astarte-json) comes with its cloud's rows
        n
        for n in components.names()
        if components.kind(n) == "block"
        and not any(components.kind(r) == "cloud" for r in components.evaluate(n).requires)
    ]
    steps.append(("core + every building block", ["tether"] + blocks, False))
    rows = []
    base = None
    for label, requires, certauth in steps:
        manifest = _manifest(work / "manifest.py", requires, certauth)
        # regenerated only when a frozen file is newer than them: force it (tools/firmware.py)
        (work / "build" / "frozen_content.c").unlink(missing_ok=True)
        shutil.rmtree(work / "build" / "frozen_mpy", ignore_errors=True)
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


PORTENTA_REGION = 1280 * 1024  # FLASH_TEXT of ARDUINO_PORTENTA_H7 (stm32h747.ld)
FREE_MIN_KB = 40  # issue 10


def _elf_flash(elf):
    """text + data: what an image puts in flash."""
    out = subprocess.run(
        ["arm-none-eabi-size", str(elf)], capture_output=True, text=True, check=True
    ).stdout
    text, data = out.splitlines()[1].split()[:2]
    return int(text) + int(data)


def portenta_rows(mpy_dir, jobs=2, build=None):
    """The real Portenta H7 image: the stock one (its board manifest alone), the default
    (password auth) and with certificate auth; flash used and free in its region. One build
    folder, re-frozen for each manifest."""
    mpy_dir = Path(mpy_dir).resolve()
    work = Path(build or ROOT / "build" / "bench-flash-portenta")
    work.mkdir(parents=True, exist_ok=True)
    board = ROOT / "boards" / "PORTENTA_H7" / "manifest.py"
    steps = [
        ("stock (no Tether)", "include('$(BOARD_DIR)/manifest.py')"),
        ("Tether: arduino, password", "include(%r, certauth=False)" % str(board)),
        ("Tether: arduino + certauth", "include(%r, certauth=True)" % str(board)),
    ]
    rows = []
    for label, text in steps:
        manifest = work / "manifest.py"
        manifest.write_text(text + "\n")
        (work / "build" / "frozen_content.c").unlink(missing_ok=True)
        shutil.rmtree(work / "build" / "frozen_mpy", ignore_errors=True)
        cmd = [
            "make",
            "-C",
            str(mpy_dir / "ports" / "stm32"),
            "BOARD=ARDUINO_PORTENTA_H7",
            "BUILD=%s" % (work / "build"),
            "FROZEN_MANIFEST=%s" % manifest,
            "-j%d" % jobs,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError("Portenta build failed for %s:\n%s" % (label, proc.stderr[-2000:]))
        used = _elf_flash(work / "build" / "firmware.elf")
        rows.append({"image": label, "flash": used, "free": PORTENTA_REGION - used})
    for r in rows:
        r["tether"] = r["flash"] - rows[0]["flash"]
    return rows


def run(mpy_dir=None, markdown=False, portenta=False):
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
    if mpy_dir and not portenta:
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
    if mpy_dir and portenta:
        print()
        print("ARDUINO_PORTENTA_H7 image (1280 KiB region; issue 10: >= %d KB free)" % FREE_MIN_KB)
        for r in portenta_rows(mpy_dir):
            print(
                "%-28s %9d B  Tether %6.1f KB  free %6.1f KB  %s"
                % (
                    r["image"],
                    r["flash"],
                    r["tether"] / 1024,
                    r["free"] / 1024,
                    "ok" if r["free"] >= FREE_MIN_KB * 1024 else "UNDER",
                )
            )
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.flash", description=__doc__.split("\n")[0])
    ap.add_argument("--mpy-dir", default=os.environ.get("MPY_DIR") or None)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument(
        "--portenta", action="store_true", help="with --mpy-dir: the real image, not qemu"
    )
    args = ap.parse_args(argv)
    run(args.mpy_dir, args.markdown, args.portenta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
