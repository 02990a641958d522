"""A simulated board: the real firmware (firmware/main.py) on the MicroPython unix port,
configured to talk to this emulator.

write_board_dir() writes what a real board's filesystem would hold (settings.json,
secrets.json, DER credentials; format: docs/firmware.md); BoardProcess runs it and keeps its
output so tests and the demo can follow what the device says.
"""

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"
LIB = ROOT / "lib"


def micropython_binary():
    here = Path(sys.executable).parent / "micropython"
    if here.exists():
        return str(here)
    found = shutil.which("micropython")
    if not found:
        raise RuntimeError("micropython not found: run `make venv`")
    return found


def write_board_dir(
    sim, device_id, directory, app="demo_app", auth="password", secret=None, extra=None
):
    """settings.json + secrets.json (+ DER files) for a board pointed at `sim`.

    auth "password": basic auth with `secret` and the test CA to verify the server;
    "certificate": mutual TLS with the device's DER key and certificate."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    shutil.copy(sim.ca.cert_der_path, d / "ca.der")
    settings = {
        "cloud": "arduino",
        "device_id": device_id,
        "app": app,
        "wifi": {"driver": "fake"},
        "server": "localhost",  # the emulator's certificate names localhost and 127.0.0.1
        "watchdog_ms": 0,
        "log_level": "info",
    }
    secrets = {"wifi_ssid": "cloudsim", "wifi_password": "not-a-real-network"}
    if auth == "certificate":
        files = sim.device_files(device_id)
        shutil.copy(files["key_der"], d / "key.der")
        shutil.copy(files["cert_der"], d / "cert.der")
        settings["credentials"] = {"key": "key.der", "cert": "cert.der", "ca": "ca.der"}
        settings["port"] = sim.ports["certificate"]
    else:
        settings["credentials"] = {"ca": "ca.der"}
        settings["port"] = sim.ports["password"]
        secrets["secret_key"] = secret if secret is not None else sim.device(device_id).secret
    settings.update(extra or {})
    (d / "settings.json").write_text(json.dumps(settings, indent=1))
    path = d / "secrets.json"
    path.write_text(json.dumps(secrets))
    path.chmod(0o600)
    return d / "settings.json"


class BoardProcess:
    """firmware/main.py on the unix port; output lines kept (and optionally echoed)."""

    def __init__(self, settings_path, app_paths=(), run_s=None, echo=None, env=None):
        paths = [".frozen", str(LIB), str(FIRMWARE)] + [str(p) for p in app_paths]
        full_env = dict(os.environ)
        full_env["MICROPYPATH"] = ":".join(paths)
        if run_s:
            full_env["TETHER_RUN_S"] = str(run_s)
        full_env.update(env or {})
        self.lines = []
        self._cond = threading.Condition()
        self._echo = echo
        self.proc = subprocess.Popen(
            [micropython_binary(), str(FIRMWARE / "main.py"), str(settings_path)],
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
            # Its own process group: Ctrl-C in a terminal reaches the runner (the demo, a
            # test), which then stops the board; the board does not die mid-line on its own.
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
            if self._echo is not None:
                self._echo(line)
        with self._cond:
            self._cond.notify_all()

    def wait_line(self, text, timeout=10, start=0):
        """Index of the first output line (from `start`) containing text; TimeoutError."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i in range(start, len(self.lines)):
                    if text in self.lines[i]:
                        return i
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise TimeoutError(
                        "device never printed %r; last output:\n%s"
                        % (text, "\n".join(self.lines[-30:]))
                    )
                self._cond.wait(min(left, 0.2))

    def output(self):
        with self._cond:
            return "\n".join(self.lines)

    def stop(self, timeout=5):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                # SIGKILL cannot be ignored, but on a loaded machine the kernel may take
                # seconds to tear the process down: wait for it rather than fail the stop.
                self.proc.wait(60)
        self._reader.join(2)
        return self.proc.returncode
