"""Cached virtual environments for reference SDKs that cannot live in the project venv.

azure-iot-device pins paho-mqtt < 2 and astarte-device-sdk pins its own stack, while the
project venv has paho-mqtt 2. Differential tests run those SDKs in a venv of their own:

    python = ref_python("azure")          # .venv-ref/azure/bin/python, made on first use
    out = subprocess.run([python, "-c", script], ...)

The venv is built once (`python -m venv` + `pip install <requirement>`) and reused while its
stamp file holds the same requirement. A file lock makes parallel pytest workers (xdist)
wait for the one that builds it instead of racing. A failed pip install is an error, never
a skip: a differential test that silently does not run proves nothing.
"""

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REF_DIR = ROOT / ".venv-ref"

# name -> pinned requirement (the versions protocols.md §2.11 and §5.12 observed).
REQUIREMENTS = {
    "azure": "azure-iot-device==2.14.0",
    "astarte": "astarte-device-sdk==0.14.0",
}

PIP_TIMEOUT_S = 900
STAMP = "tether-requirement.txt"


class RefVenvError(RuntimeError):
    """The reference venv could not be built (pip output included)."""


def _python_in(venv):
    if os.name == "nt":  # pragma: no cover - the project runs tests on Linux
        return venv / "Scripts" / "python.exe"
    return venv / "bin" / "python"


def _ready(venv, requirement):
    stamp = venv / STAMP
    try:
        return _python_in(venv).exists() and stamp.read_text().strip() == requirement
    except OSError:
        return False


def _run(cmd, what):
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise RefVenvError("%s timed out after %d s: %s" % (what, PIP_TIMEOUT_S, " ".join(cmd)))
    if proc.returncode != 0:
        raise RefVenvError(
            "%s failed (exit %d): %s\n--- stdout\n%s\n--- stderr\n%s"
            % (what, proc.returncode, " ".join(cmd), proc.stdout[-4000:], proc.stderr[-4000:])
        )


def ref_python(name, base_python=None):
    """Path (str) of the python of `.venv-ref/<name>/`, built with REQUIREMENTS[name]."""
    try:
        requirement = REQUIREMENTS[name]
    except KeyError:
        raise RefVenvError("unknown reference venv %r (known: %s)" % (name, sorted(REQUIREMENTS)))
    venv = REF_DIR / name
    if _ready(venv, requirement):
        return str(_python_in(venv))
    REF_DIR.mkdir(exist_ok=True)
    with open(REF_DIR / (name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        try:
            if _ready(venv, requirement):  # another worker built it while we waited
                return str(_python_in(venv))
            if venv.exists():
                shutil.rmtree(venv)  # stale requirement or a half-built venv
            _run([base_python or sys.executable, "-m", "venv", str(venv)], "creating venv")
            py = str(_python_in(venv))
            _run(
                [py, "-m", "pip", "install", "--disable-pip-version-check", "-q", requirement],
                "pip install %s" % requirement,
            )
            # The stamp is written last: an interrupted build is redone next time.
            (venv / STAMP).write_text(requirement + "\n")
            return py
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def run_ref(name, script, *args, timeout_s=120):
    """Run `script` (Python source) in the reference venv; return its stdout, or raise."""
    cmd = [ref_python(name), "-c", script] + [str(a) for a in args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode != 0:
        raise RefVenvError(
            "reference script failed (exit %d)\n--- stderr\n%s" % (proc.returncode, proc.stderr)
        )
    return proc.stdout


if __name__ == "__main__":  # python tests/refvenv.py azure  -> builds and prints the path
    for arg in sys.argv[1:] or sorted(REQUIREMENTS):
        print(arg, ref_python(arg))
