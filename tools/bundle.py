"""Precompiled bundles, deploys and the mip package, per board.

    python -m tools.bundle build BOARD [--out DIR]    .mpy bundle for the board's arch
    python -m tools.bundle deploy BOARD --port PORT [--settings F] [--app F] [--resume]
    python -m tools.bundle sizes                      bundle size per architecture
    python -m tools.bundle package-json [--check]     write (or check) package.json
    python -m tools.bundle firmware BOARD --mpy-dir DIR [--dry-run]   frozen image build

A bundle is what a board's filesystem needs: lib/tether/**.mpy and lib/tether_firmware.mpy
(compiled with mpy-cross for the board's architecture), plus boot.py and main.py as source
(a board runs those two by name). `deploy` copies the bundle, tether_board.json (the
board's defaults), the settings, their secrets and credential files and the app module
with one chained mpremote command, which prints each file as it goes.
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIB = ROOT / "lib"
FIRMWARE = ROOT / "firmware"
ARCHS = ("xtensawin", "armv7emdp", "armv6m")

sys.path.insert(0, str(ROOT))
from tools import boards  # noqa: E402


def _tool(name):
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        raise SystemExit("%s not found: run `make venv`" % name)
    return found


def library_modules():
    """Every library module, as paths relative to lib/ (tether/..., sorted)."""
    return sorted(
        str(p.relative_to(LIB))
        for p in (LIB / "tether").rglob("*.py")
        if "__pycache__" not in p.parts
    )


def compile_module(src, dst, arch, source_name):
    dst.parent.mkdir(parents=True, exist_ok=True)
    cmd = [_tool("mpy-cross"), "-march=" + arch, "-s", source_name, "-o", str(dst), str(src)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError("mpy-cross %s failed for %s:\n%s" % (arch, src, proc.stderr))


def build(board, out=None, arch=None):
    """Build the bundle; returns (out_dir, {relative path: size})."""
    info = boards.load(board) if board else {"name": arch, "mpy_arch": arch}
    arch = arch or info["mpy_arch"]
    out = Path(out or ROOT / "build" / info["name"] / "bundle")
    if out.exists():
        shutil.rmtree(out)
    sizes = {}
    for rel in library_modules():
        dst = out / "lib" / (rel[:-3] + ".mpy")
        compile_module(LIB / rel, dst, arch, rel)
        sizes[str(dst.relative_to(out))] = dst.stat().st_size
    dst = out / "lib" / "tether_firmware.mpy"
    compile_module(FIRMWARE / "tether_firmware.py", dst, arch, "tether_firmware.py")
    sizes["lib/tether_firmware.mpy"] = dst.stat().st_size
    for name in ("boot.py", "main.py"):
        shutil.copy(FIRMWARE / name, out / name)
        sizes[name] = (out / name).stat().st_size
    if board:
        shutil.copy(Path(info["dir"]) / "board.json", out / "tether_board.json")
        sizes["tether_board.json"] = (out / "tether_board.json").stat().st_size
    return out, sizes


def _settings_files(settings):
    """(local path, board path) of the settings, their secrets and credential files."""
    settings = Path(settings)
    if not settings.exists():
        return []
    files = [(settings, "settings.json")]
    data = json.loads(settings.read_text())
    base = settings.parent
    names = [data.get("secrets")] if data.get("secrets") else ["secrets.json", "secrets.py"]
    for name in names:
        if (base / name).exists():
            files.append((base / name, name))
    for value in (data.get("credentials") or {}).values():
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, str) and not v.startswith("se05x:") and (base / v).exists():
                files.append((base / v, v))
    return files


_PREPARE = """import os
def _walk(d):
    try:
        for e in os.ilistdir(d):
            p = d + '/' + e[0]
            if e[1] == 0x4000:
                _walk(p)
            elif p.endswith('.py'):
                os.remove(p)
    except OSError:
        pass
_walk('lib/tether')
for d in %r:
    try:
        os.mkdir(d)
    except OSError:
        pass
"""


def deploy_command(port, out, extra, resume=False):
    """The mpremote argv that copies the bundle dir `out` plus extra (local, remote) files."""
    files = sorted(p for p in out.rglob("*") if p.is_file())
    dirs = sorted({str(p.parent.relative_to(out)) for p in files} - {"."}, key=len)
    all_dirs = set()
    for d in dirs:
        parts = d.split("/")
        for i in range(1, len(parts) + 1):
            all_dirs.add("/".join(parts[:i]))
    for _, remote in extra:
        if "/" in remote:
            all_dirs.add(remote.rsplit("/", 1)[0])
    cmd = [_tool("mpremote"), "connect", port]
    if resume:
        cmd.append("resume")  # the simulated board (unix port) has no soft reset
    cmd += ["exec", _PREPARE % (sorted(all_dirs, key=len),)]
    for p in files:
        cmd += ["+", "cp", str(p), ":" + str(p.relative_to(out))]
    for local, remote in extra:
        cmd += ["+", "cp", str(local), ":" + remote]
    return cmd


def deploy(board, port, settings=None, app=None, resume=False, out=None):
    out, sizes = build(board, out)
    extra = _settings_files(settings) if settings else []
    if app and Path(app).exists():
        extra.append((Path(app), "app.py"))
    total = sum(sizes.values()) + sum(Path(p).stat().st_size for p, _ in extra)
    print(
        "deploying %d files (%d bytes) to %s: bundle for %s, %s"
        % (
            len(sizes) + len(extra),
            total,
            port,
            board,
            ", ".join(r for _, r in extra) or "no settings/app",
        ),
        flush=True,
    )
    proc = subprocess.run(deploy_command(port, out, extra, resume))
    if proc.returncode == 0:
        print("done: reset the board (or `mpremote connect %s reset`) to start Tether" % port)
    return proc.returncode


def sizes_by_arch():
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        for arch in ARCHS:
            _, sizes = build(None, Path(tmp) / arch, arch)
            result[arch] = sum(v for k, v in sizes.items() if k.endswith(".mpy"))
    return result


def firmware_commands(board, mpy_dir):
    """The commands that build a MicroPython image with boards/<B>/manifest.py frozen in."""
    info = boards.load(board)
    mpy_dir = Path(mpy_dir).resolve()
    port_dir = mpy_dir / "ports" / info["port"]
    manifest = Path(info["dir"]) / "manifest.py"
    mb = "BOARD=" + info["micropython_board"]
    return [
        ["make", "-C", str(mpy_dir / "mpy-cross")],
        ["make", "-C", str(port_dir), mb, "submodules"],
        ["make", "-C", str(port_dir), mb, "FROZEN_MANIFEST=%s" % manifest],
    ], port_dir / info["firmware_image"]


def firmware(board, mpy_dir, dry_run=False):
    if not (Path(mpy_dir) / "ports").is_dir():
        raise ValueError("MPY_DIR=%s is not a MicroPython checkout (no ports/)" % mpy_dir)
    cmds, image = firmware_commands(board, mpy_dir)
    for cmd in cmds:
        print("+ " + " ".join(cmd), flush=True)
        if not dry_run and subprocess.run(cmd).returncode != 0:
            print(
                "error: the port build failed (is the port's toolchain installed? see "
                "docs/boards.md)",
                file=sys.stderr,
            )
            return 1
    print("image: %s" % image)
    return 0


def package_json():
    from tether import __version__

    urls = [[rel, "lib/" + rel] for rel in library_modules()]
    return {"urls": urls, "deps": [], "version": __version__}


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools.bundle", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("board")
    b.add_argument("--out")
    d = sub.add_parser("deploy")
    d.add_argument("board")
    d.add_argument("--port", required=True)
    d.add_argument("--settings")
    d.add_argument("--app")
    d.add_argument("--resume", action="store_true", help="skip the soft reset (simulated board)")
    sub.add_parser("sizes")
    f = sub.add_parser("firmware")
    f.add_argument("board")
    f.add_argument("--mpy-dir", required=True)
    f.add_argument("--dry-run", action="store_true")
    p = sub.add_parser("package-json")
    p.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(LIB))
    try:
        if args.cmd == "build":
            out, sizes = build(args.board, args.out)
            mpy = sum(v for k, v in sizes.items() if k.endswith(".mpy"))
            print("%s: %d files, %d bytes of .mpy -> %s" % (args.board, len(sizes), mpy, out))
        elif args.cmd == "deploy":
            return deploy(args.board, args.port, args.settings, args.app, args.resume)
        elif args.cmd == "firmware":
            return firmware(args.board, args.mpy_dir, args.dry_run)
        elif args.cmd == "sizes":
            for arch, n in sizes_by_arch().items():
                print("%-10s %7d bytes" % (arch, n))
        else:
            text = json.dumps(package_json(), indent=2) + "\n"
            path = ROOT / "package.json"
            if args.check:
                if not path.exists() or path.read_text() != text:
                    print("package.json is out of date: run python -m tools.bundle package-json")
                    return 1
                return 0
            path.write_text(text)
            print("wrote %s (%d modules)" % (path, len(package_json()["urls"])))
    except (ValueError, RuntimeError) as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
