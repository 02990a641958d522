"""Tether's components, read from their MicroPython manifests (manifests/<name>/manifest.py).

    python -m tools.components                 every component: kind, files, what it requires
    python -m tools.components files arduino   the files an image with that cloud carries

A component is a folder manifests/<name>/ with a manifest.py, written for MicroPython's
manifestfile (metadata, require, include, add_library, package, module, options). The
manifests are the one list: the frozen images use them as they are, and this module
evaluates them the same way (without a MicroPython checkout) for the .mpy bundles, the mip
package files and the tests. Kinds:

- "core": `tether`, required by every cloud;
- "cloud": `tether-<cloud>` whose files hold tether/<cloud>/profile.py (the firmware's
  `"cloud": "<cloud>"`);
- "block": a building block a cloud requires (tether-jwt, tether-sas, ...), or an image
  adds (tether-certauth: certificate authentication, `certauth=True`);
- "firmware": tether-firmware (tether_firmware.py, boot.py, main.py);
- "unix": tether-fakes, the unix port's fake hardware (never on a board).

Library modules in no component: HOST_ONLY (CPython only: tether/hsm.py, tether/tlshost.py).

Every module is frozen (and compiled into .mpy bundles) at optimisation level 3, `opt=3` in
the manifests as in MicroPython's own asyncio: no line numbers in the bytecode (6% of the
flash; a traceback from a frozen module names the function, not the line) and no asserts.
Sources (`mip install`, `pip install .`) keep them.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIB = ROOT / "lib"
MANIFESTS = ROOT / "manifests"
CORE = "tether"
FIRMWARE = "tether-firmware"
FAKES = "tether-fakes"
CERTAUTH = "tether-certauth"
# CPython-only library modules: never frozen, bundled or in a mip package for a board.
HOST_ONLY = ("tether/hsm.py", "tether/tlshost.py")
OPT = 3  # the optimisation level of every module (manifests' opt=3; see above)


class ManifestError(ValueError):
    pass


class _Options:
    def __init__(self, kwargs):
        self._kwargs = kwargs
        self._defaults = {}

    def defaults(self, **kwargs):
        self._defaults = kwargs

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return self._kwargs.get(name, self._defaults.get(name))


class Manifest:
    """Evaluates manifest.py files like MicroPython's tools/manifestfile.py (MODE_COMPILE):
    files() -> [(source path, target path)] in order; requires: component names seen.
    Port variables ($(PORT_DIR), $(BOARD_DIR), ...) are not followed: they are recorded in
    `port_includes` (a frozen image's port manifest, outside this repository)."""

    def __init__(self):
        self._files = []
        self._targets = set()
        self.opts = {}  # target -> opt (the optimisation level package()/module() gave)
        self._visited = set()
        self._libraries = {}
        self._library_dirs = []
        self.requires = []
        self.port_includes = []

    def execute(self, path, **kwargs):
        self.include(str(path), **kwargs)
        return self

    def files(self):
        return list(self._files)

    def targets(self):
        return [t for _, t in self._files]

    def _resolve(self, path):
        return os.path.abspath(path)

    def _globals(self, kwargs):
        return {
            "metadata": lambda **kw: None,
            "include": self.include,
            "require": self.require,
            "add_library": self.add_library,
            "package": self.package,
            "module": self.module,
            "options": _Options(kwargs),
        }

    def include(self, path, **kwargs):
        if not isinstance(path, str):
            for p in path:
                self.include(p, **kwargs)
            return
        if path.startswith("$("):
            self.port_includes.append(path)
            return
        path = self._resolve(path)
        if os.path.isdir(path):
            path = os.path.join(path, "manifest.py")
        if path in self._visited:
            return
        self._visited.add(path)
        prev = os.getcwd()
        try:
            with open(path) as f:
                text = f.read()
            os.chdir(os.path.dirname(path))
            exec(compile(text, path, "exec"), self._globals(kwargs))
        except OSError as exc:
            raise ManifestError("manifest %s: %s" % (path, exc))
        finally:
            os.chdir(prev)

    def add_library(self, name, path, prepend=False):
        path = self._resolve(path)
        self._libraries[name] = path
        if path not in self._library_dirs:
            self._library_dirs.insert(0 if prepend else len(self._library_dirs), path)

    def require(self, name, version=None, library=None, **kwargs):
        dirs = [self._libraries[library]] if library in self._libraries else self._library_dirs
        if library is not None and library not in self._libraries:
            raise ManifestError("unknown library %r for require(%r)" % (library, name))
        for lib_dir in dirs:
            for root, _, filenames in os.walk(lib_dir):
                if os.path.basename(root) == name and "manifest.py" in filenames:
                    if name not in self.requires:
                        self.requires.append(name)
                    self.include(root, **kwargs)
                    return
        raise ManifestError("package %r not found in any known library" % name)

    def _add(self, full, target, opt=None):
        if not os.path.isfile(full):
            raise ManifestError("cannot stat %s" % full)
        if target in self._targets:
            raise ManifestError("%s is listed twice" % target)
        self._targets.add(target)
        self._files.append((full, target))
        self.opts[target] = opt

    def package(self, package_path, files=None, base_path=".", opt=None):
        base = self._resolve(base_path)
        if files is not None:
            for f in files:
                target = os.path.join(package_path, f) if package_path else f
                self._add(os.path.join(base, target), target, opt)
            return
        found = []
        for dirpath, _, filenames in os.walk(os.path.join(base, package_path)):
            for f in filenames:
                if f.endswith(".py"):
                    full = os.path.join(dirpath, f)
                    found.append((full, os.path.relpath(full, base)))
        for full, target in sorted(found, key=lambda x: x[1]):
            self._add(full, target, opt)

    def module(self, module_path, base_path=".", opt=None):
        if not module_path.endswith(".py"):
            raise ManifestError("module must be a .py file: %s" % module_path)
        self._add(os.path.join(self._resolve(base_path), module_path), module_path, opt)


def names():
    """Every component (a folder of manifests/ with a manifest.py), sorted."""
    return sorted(p.parent.name for p in MANIFESTS.glob("*/manifest.py"))


def evaluate(name, **options):
    """The Manifest of one component, with everything it requires (options: its manifest's
    `options`, e.g. wifi=("cyw43",) for the core)."""
    if name not in names():
        raise ManifestError("unknown component %r (one of: %s)" % (name, ", ".join(names())))
    m = Manifest()
    m.add_library("tether", str(MANIFESTS))
    return m.execute(MANIFESTS / name / "manifest.py", **options)


def opt_levels():
    """{target: optimisation level} of every file of every component (None: mpy-cross's
    default), as the manifests give it to package()/module()."""
    out = {}
    for n in names():
        out.update(evaluate(n).opts)
    return out


def own_targets(name):
    """The files a component adds itself (its requirements' files left out)."""
    m = evaluate(name)
    theirs = set()
    for req in m.requires:
        if req != name:
            theirs.update(evaluate(req).targets())
    return [t for t in m.targets() if t not in theirs]


def kind(name):
    if name == CORE:
        return "core"
    if name == FIRMWARE:
        return "firmware"
    if name == FAKES:
        return "unix"
    cloud = name[len("tether-") :]
    if "tether/%s/profile.py" % cloud in own_targets(name):
        return "cloud"
    return "block"


def clouds():
    """The cloud names a component exists for (tether-<cloud> with a firmware profile)."""
    return [n[len("tether-") :] for n in names() if n.startswith("tether-") and kind(n) == "cloud"]


def image(clouds_=("arduino",), firmware=True, fakes=False, certauth=False, wifi=None, **more):
    """The (source, target) files of the top-level manifest.py with these options: what a
    frozen image with these clouds carries (certauth: + tether-certauth, which akenza and SAP
    require anyway; wifi: the WiFi drivers, None: all; more: other options of manifest.py,
    e.g. interface_json=True for Astarte's interface JSON parser)."""
    if wifi is not None:
        more["wifi"] = tuple(wifi)
    m = Manifest()
    return m.execute(
        ROOT / "manifest.py",
        clouds=tuple(clouds_),
        firmware=firmware,
        fakes=fakes,
        certauth=certauth,
        **more,
    ).files()


def board_image(board_dir, clouds_=None, certauth=None):
    """The (source, target) files Tether puts in a board's image (boards/<B>/manifest.py;
    the port's own manifest is not followed). None: the board manifest's default."""
    kwargs = {}
    if clouds_ is not None:
        kwargs["clouds"] = tuple(clouds_)
    if certauth is not None:
        kwargs["certauth"] = certauth
    return Manifest().execute(Path(board_dir) / "manifest.py", **kwargs).files()


def board_certauth(board_dir):
    """Whether a board's image carries tether-certauth by default (its manifest's option)."""
    targets = set(t for _, t in board_image(board_dir, ()))
    return set(own_targets(CERTAUTH)) <= targets


def library_targets(files):
    """The tether/... targets among (source, target) pairs."""
    return [t for _, t in files if t.startswith("tether/")]


def unassigned():
    """lib/tether modules that are in no component and not HOST_ONLY (sorted)."""
    on_disk = {
        str(p.relative_to(LIB))
        for p in (LIB / "tether").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    listed = set(HOST_ONLY)
    for n in names():
        listed.update(evaluate(n).targets())
    return sorted(on_disk - listed)


def _cpython_branch(node):
    """The statements of a top-level `if MICROPYTHON:` / `if not MICROPYTHON:` that run on
    CPython only (an image is MicroPython's: what they import need not be in it)."""
    import ast

    test = node.test
    negated = isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not)
    if negated:
        test = test.operand
    if not (isinstance(test, ast.Name) and test.id == "MICROPYTHON"):
        return None
    return node.body if negated else node.orelse


def _top_imports(path):
    """tether.* modules a file imports when it is imported (module level, including under
    a top-level if/try, but not a branch that runs on CPython only): what must be in the
    same image."""
    import ast

    tree = ast.parse(Path(path).read_text())
    nodes = list(tree.body)
    out = set()
    while nodes:
        node = nodes.pop()
        if isinstance(node, ast.If) and _cpython_branch(node) is not None:
            cp = _cpython_branch(node)
            nodes.extend(node.orelse if cp is node.body else node.body)
        elif isinstance(node, (ast.If, ast.Try)):
            nodes.extend(node.body + node.orelse + getattr(node, "finalbody", []))
            for h in getattr(node, "handlers", []):
                nodes.extend(h.body)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module)
            out.update(node.module + "." + a.name for a in node.names)
    return out


def _module_file(dotted):
    """tether/x/y.py or tether/x/__init__.py for a dotted name that is a module, else None."""
    parts = dotted.split(".")
    if parts[0] != "tether":
        return None
    base = "/".join(parts)
    if (LIB / (base + ".py")).exists():
        return base + ".py"
    if (LIB / base / "__init__.py").exists():
        return base + "/__init__.py"
    return None


def missing_imports(targets):
    """[(file, module file)] for each tether module imported at module level by one of
    `targets` (lib-relative paths) that is not among them."""
    have = set(targets)
    out = []
    for t in sorted(have):
        if not t.startswith("tether/"):
            continue
        for dotted in sorted(_top_imports(LIB / t)):
            f = _module_file(dotted)
            if f is not None and f not in have:
                out.append((t, f))
    return out


def check_with_micropython(mpy_dir):
    """MicroPython's own tools/manifestfile.py reads every component's manifest to the same
    files as this module does (needs a MicroPython checkout: `make firmware`'s MPY_DIR)."""
    import re
    import subprocess

    tool = Path(mpy_dir) / "tools" / "manifestfile.py"
    bad = 0
    for name in names():
        path = ROOT / "manifests" / name / "manifest.py"
        out = subprocess.run(
            [sys.executable, str(tool), "--compile", str(path)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        theirs = sorted(re.findall(r"target_path='([^']+)'", out))
        if theirs != sorted(evaluate(name).targets()):
            print("%s: manifestfile.py reads %s" % (name, theirs))
            bad += 1
    print("%d components, %d differ" % (len(names()), bad))
    return 1 if bad else 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == ["check-mpy"]:  # check-mpy MPY_DIR: MicroPython's own tool agrees
            return check_with_micropython(argv[1])
        if argv[:1] == ["files"]:
            for _, target in image(argv[1].split(",") if len(argv) > 1 else ("arduino",)):
                print(target)
            return 0
        for n in names():
            own = own_targets(n)
            reqs = [r for r in evaluate(n).requires if r != n]
            print("%-18s %-8s %2d files  requires: %s" % (n, kind(n), len(own), ", ".join(reqs)))
        missing = unassigned()
        if missing:
            print("in no component: %s" % ", ".join(missing))
            return 1
    except ManifestError as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
