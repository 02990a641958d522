"""The soak rig's child processes (CPython only): mosquitto, the board on the unix port,
and the paho-mqtt collector on the broker side. Each process we start is stopped by its PID
(`_Child`), never by name and never left behind. The board itself is tools/soak.py.
"""

import sys


def _root():
    from pathlib import Path

    return Path(__file__).resolve().parent.parent


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Child:
    """A child process we started (`self.proc`): stopped by PID, never left behind."""

    proc = None

    def kill(self):
        """SIGKILL: the process vanishes without a word (a crash, a power cut)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except Exception:
                self.proc.kill()
                self.proc.wait(5)


class Mosquitto(_Child):
    """A plain-TCP mosquitto on a free loopback port, stopped (or killed) by PID."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.proc = None
        self.port = None

    def start(self, attempts=3):
        import shutil
        import socket
        import subprocess
        import time

        binary = next(
            (p for p in ("/usr/sbin/mosquitto", "/usr/bin/mosquitto") if _exists(p)), None
        ) or shutil.which("mosquitto")
        if not binary:
            raise RuntimeError("mosquitto not found: apt-get install mosquitto")
        for _ in range(attempts):
            port = free_port()
            conf = self.workdir / ("mosquitto-%d.conf" % port)
            conf.write_text(
                "per_listener_settings false\npersistence false\n"
                "log_dest file %s\nlistener %d 127.0.0.1\nallow_anonymous true\n"
                % (self.workdir / ("mosquitto-%d.log" % port), port)
            )
            self.proc = subprocess.Popen(
                [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            deadline = time.monotonic() + 10
            while self.proc.poll() is None and time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                    self.port = port
                    return self
                except OSError:
                    time.sleep(0.05)
            self.stop()
        raise RuntimeError("mosquitto did not start")


def _exists(p):
    import os

    return os.path.exists(p)


class Collector:
    """A paho-mqtt subscriber on the broker side: records every value that arrives."""

    def __init__(self, port, topic):
        import threading

        self.port = port
        self.topic = topic
        self.values = []
        self.lock = threading.Lock()
        self.client = None

    def start(self, timeout=10):
        import threading

        import paho.mqtt.client as mqtt

        subscribed = threading.Event()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="collector-%d" % id(self))

        def on_connect(client, userdata, flags, rc, props=None):
            client.subscribe(self.topic, 1)

        def on_subscribe(client, userdata, mid, rcs, props=None):
            subscribed.set()

        def on_message(client, userdata, msg):
            with self.lock:
                self.values.append(int(msg.payload.split()[0]))

        c.on_connect = on_connect
        c.on_subscribe = on_subscribe
        c.on_message = on_message
        c.connect("127.0.0.1", self.port, 30)
        c.loop_start()
        if not subscribed.wait(timeout):
            c.loop_stop()
            raise TimeoutError("collector did not subscribe")
        self.client = c
        return self

    def publish(self, topic, payload):
        self.client.publish(topic, payload, 1).wait_for_publish(5)

    def stop(self):
        if self.client is not None:
            self.client.disconnect()
            self.client.loop_stop()
            self.client = None

    def snapshot(self):
        with self.lock:
            return list(self.values)


class BoardProcess(_Child):
    """The board on the MicroPython unix port (or CPython with interp="cpython").

    The unix port's GC heap is capped at `heapsize` (256 KB: the source of tools/soak.py and
    of tether is compiled on the board itself here, which a frozen firmware does not need;
    160 KB is not enough for that compilation)."""

    def __init__(self, workdir, cfg, interp="unix", heapsize="256k"):
        import json

        self.workdir = workdir
        self.cfg = dict(cfg)
        self.cfg.setdefault("control", str(workdir / "control"))
        self.cfg.setdefault("wifi_control", str(workdir / "wifi"))
        self.cfg_path = workdir / ("board-%d.json" % id(self))
        self.cfg_path.write_text(json.dumps(self.cfg))
        self.interp = interp
        self.heapsize = heapsize
        self.proc = None
        self.status = None
        self.statuses = 0
        self.produced_line = None
        self.end = None
        self.tail = []
        self._seq = 0
        self._cmds = []

    def start(self):
        import os
        import subprocess
        import threading

        root = _root()
        script = root / "tools" / "soak.py"
        env = dict(os.environ)
        if self.interp == "unix":
            sys.path.insert(0, str(root / "tests"))
            from mpy import micropython_cmd, micropython_env

            cmd = micropython_cmd(script, "board", self.cfg_path, heapsize=self.heapsize)
            env = micropython_env()
        else:
            cmd = [sys.executable, str(script), "board", str(self.cfg_path)]
            env["PYTHONPATH"] = str(root / "lib")
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self):
        import json

        for line in self.proc.stdout:
            line = line.rstrip("\n")
            if line.startswith("@@S "):
                self.status = json.loads(line[4:])
                self.statuses += 1
            elif line.startswith("@@PRODUCED "):
                self.produced_line = json.loads(line[11:])
            elif line.startswith("@@END "):
                self.end = json.loads(line[6:])
            else:
                self.tail.append(line)
                del self.tail[:-200]

    def wait(self, pred, timeout, what="condition"):
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.status
            if st is not None and pred(st):
                return st
            if self.proc.poll() is not None and self.end is None:
                break
            time.sleep(0.05)
        raise AssertionError(
            "board: %s not reached in %s s; last status %s\n%s"
            % (what, timeout, self.status, "\n".join(self.tail[-40:]))
        )

    def command(self, *words):
        import os

        self._seq += 1
        self._cmds.append("%d %s" % (self._seq, " ".join(str(w) for w in words)))
        tmp = self.cfg["control"] + ".tmp"
        with open(tmp, "w") as f:
            f.write("\n".join(self._cmds) + "\n")
        os.replace(tmp, self.cfg["control"])

    def wifi(self, up):
        import os

        tmp = self.cfg["wifi_control"] + ".tmp"
        with open(tmp, "w") as f:
            f.write("up" if up else "drop")
        os.replace(tmp, self.cfg["wifi_control"])

    def finish(self, timeout=60):
        """Stop producing, wait until the queue is empty, exit; returns the final status."""
        import time

        self.command("stop")
        self.wait(
            lambda s: not s["producing"] and s["depth"] == 0 and s["state"] == "ready",
            timeout,
            "queue drained",
        )
        self.command("exit")
        deadline = time.monotonic() + 10
        while self.end is None and time.monotonic() < deadline:
            time.sleep(0.05)
        self.stop()
        return self.end or self.status

    # kill() is a power cut: the store on disk is all that survives.

    def stop(self):
        super().stop()
        if getattr(self, "_reader", None) is not None:
            self._reader.join(5)
