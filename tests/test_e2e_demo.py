"""`make demo`'s runner end to end: emulator + firmware on the unix port + demo app, bounded
by --seconds; it must connect, push values and exit 0 (and say so)."""

import os
import signal
import subprocess
import sys
import time
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


def _board_processes(marker):
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    if marker.encode() in f.read():
                        found.append(int(pid))
            except OSError:
                pass
    return found


@pytest.mark.timeout(150)
def test_ctrl_c_stops_the_demo_and_its_board(tmp_path):
    workdir = tmp_path / "demo-int"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.demo", "--free-ports", "--workdir", str(workdir)],
        cwd=str(ROOT),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        for line in proc.stdout:
            if "values       temperature=" in line or time.monotonic() > deadline:
                break
        assert _board_processes(str(workdir / "board"))
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=80)  # the board stop may wait out a slow kill
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert proc.returncode == 0, out
    assert "done: board connected and pushed values" in out
    assert not _board_processes(str(workdir / "board"))


def test_make_demo_cloud_azure_runs_the_azure_variant():
    # The Azure variant itself is run end to end by tests/test_azure_firmware.py (same module).
    p = subprocess.run(
        ["make", "-n", "demo", "CLOUD=azure", "DEMO_SECONDS=3"],
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    assert "examples/azure_firmware/demo.py --seconds 3" in p.stdout
    assert "tools.demo" not in p.stdout
