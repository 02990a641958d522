"""`make demo`'s runner end to end: emulator + firmware on the unix port + demo app, bounded
by --seconds; it must connect, push values and exit 0 (and say so)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.timeout(90)


@pytest.mark.parametrize("auth", ["password", "certificate"])
def test_demo_runs_and_connects(tmp_path, auth):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.demo",
            "--seconds",
            "5",
            "--free-ports",
            "--workdir",
            str(tmp_path / "demo"),
            "--auth",
            auth,
        ],
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Dashboard:  http://127.0.0.1:" in out
    assert "board | demo: app ready" in out
    assert "%s auth" % auth in out
    assert "values       temperature=" in out
    assert "done: board connected and pushed values" in out
    # the test PKI was created for the demo, DER for the board
    assert (tmp_path / "demo" / "pki" / "ca.crt.der").exists()
    assert (tmp_path / "demo" / "board" / "ca.der").exists()


def test_demo_reports_a_board_that_never_connects(tmp_path):
    # a board whose secret is wrong is refused (CONNACK 5): the demo must say so and fail
    workdir = tmp_path / "demo"
    code = (
        "import sys; sys.argv=['x']; from tools.cloudsim import board\n"
        "orig = board.write_board_dir\n"
        "board.write_board_dir = lambda *a, **k: orig(*a, **dict(k, secret='wrong'))\n"
        "import tools.demo as d; d.write_board_dir = board.write_board_dir\n"
        "sys.exit(d.main(['--seconds', '4', '--free-ports', '--workdir', %r]))\n" % str(workdir)
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=str(ROOT), capture_output=True, text=True, timeout=60
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "refused" in out and "NEVER CONNECTED" in out
