"""One device process of `make bench`: bench/device_client.py on the unix port (or the paho
baseline on CPython), whose `BENCH <name> <json>` lines become values."""

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.stats import BenchError  # noqa: E402
from tools.cloudsim.board import micropython_binary  # noqa: E402

DEVICE_SCRIPT = ROOT / "bench" / "device_client.py"


class Device:
    """bench/device_client.py on the unix port; `BENCH <name> <json>` lines become values."""

    def __init__(self, cfg, libpath, heapsize_kb=None, wrapper=(), baseline=False):
        # The configuration goes in a file: the pip-installed unix port (a CPython
        # extension) dies with "FATAL: uncaught NLR" on a command line argument longer
        # than about 250 bytes.
        fd, self.cfg_path = tempfile.mkstemp(prefix="tether-bench-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(cfg, f)
        cwd = None
        if baseline:  # bench/baseline_paho.py on CPython instead
            # As a module from the root: run as a script, its folder would come first on
            # sys.path and bench/http.py would hide the stdlib's http package from paho.
            cmd = [sys.executable, "-m", "bench.baseline_paho", self.cfg_path]
            cwd = str(ROOT)
        else:
            cmd = list(wrapper) + [micropython_binary()]
            if heapsize_kb:
                cmd += ["-X", "heapsize=%dK" % heapsize_kb]
            cmd += [str(DEVICE_SCRIPT), self.cfg_path]
        env = dict(os.environ)
        env["MICROPYPATH"] = ".frozen:" + str(libpath)
        self.values = {}
        self.lines = []
        self._cond = threading.Condition()
        self.t_popen = time.time_ns()
        self.proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            with self._cond:
                self.lines.append(line)
                if line.startswith("BENCH "):
                    parts = line.split(" ", 2)
                    if len(parts) == 3:
                        try:
                            self.values[parts[1]] = json.loads(parts[2])
                        except ValueError:
                            pass
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait(self, name, timeout):
        """The value of `name` once printed; BenchError on timeout or if the process ended."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while name not in self.values:
                left = deadline - time.monotonic()
                if left <= 0 or not self._reader.is_alive():
                    raise BenchError(
                        "device never reported %r; last output:\n%s"
                        % (name, "\n".join(self.lines[-15:]))
                    )
                self._cond.wait(min(left, 0.2))
            return self.values[name]

    def finish(self, timeout):
        """Exit status (None if it had to be killed)."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(2)
        try:
            os.unlink(self.cfg_path)
        except OSError:
            pass
