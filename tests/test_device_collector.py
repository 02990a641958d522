"""The device-test collector (tests/conftest.py) refuses what it would not run.

Each case writes a dt_ file into a temporary directory and runs pytest on it in a
subprocess with tests/conftest.py loaded as a plugin, as `make test` would collect it."""

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

ASYNC_TEST = """
import asyncio


def test_plain():
    assert 1 + 1 == 2


async def test_never_awaited():
    await asyncio.sleep(0)
    assert False, "the body ran"
"""

RETURNS_COROUTINE = """
import asyncio


async def main():
    await asyncio.sleep(0)


def test_forgot_harness_run():
    return main()


def test_wrapped():
    import harness

    harness.run(main())
"""


def run_pytest(tmp_path, name, text, *args):
    d = tmp_path / "dev"
    d.mkdir()
    (d / name).write_text(text)
    env = dict(os.environ, PYTHONPATH=str(TESTS))
    cmd = [sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider"]
    cmd += ["--rootdir", str(d), "-c", os.devnull, "-o", "python_files=dt_*.py"]
    cmd += ["-q", str(d / name)] + list(args)
    p = subprocess.run(cmd, cwd=str(d), env=env, capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout + p.stderr


def test_an_async_device_test_is_a_collection_error_naming_file_and_function(tmp_path):
    rc, out = run_pytest(tmp_path, "dt_async_case.py", ASYNC_TEST)
    assert rc != 0, out
    assert "ERROR collecting" in out, out
    assert "dt_async_case.py:9: `async def test_never_awaited`" in out, out
    assert "harness.run(main())" in out, out
    assert "1 error" in out, out
    assert "passed" not in out  # test_plain is not run either: the file must be fixed


def test_a_test_returning_a_coroutine_fails_on_both_interpreters(tmp_path):
    rc, out = run_pytest(tmp_path, "dt_returns_coro.py", RETURNS_COROUTINE, "-rA")
    assert rc == 1, out
    assert "FAILED dt_returns_coro.py::test_forgot_harness_run[cpython]" in out, out
    assert "FAILED dt_returns_coro.py::test_forgot_harness_run[unix]" in out, out
    assert "PASSED dt_returns_coro.py::test_wrapped[cpython]" in out, out
    assert "PASSED dt_returns_coro.py::test_wrapped[unix]" in out, out
    assert out.count("returned a coroutine that never ran") >= 2, out
