"""Real MQTT brokers for CPython-side tests: Debian `mosquitto` on a free loopback port.

    from brokers import mosquitto_broker  # noqa: F401 (a fixture: ruff sees it unused)

    def test_x(mosquitto_broker):  # noqa: F811
        host, port = mosquitto_broker                  # also .log_path, .conf_path, .pid

    # or, without the noqa dance, a fixture of your own in the test module:
    @pytest.fixture
    def broker(tmp_path):
        with mosquitto(tmp_dir=tmp_path) as b:
            yield b

    with mosquitto(extra_config=["require_certificate true", ...], tmp_dir=tmp_path) as b:
        ...                                            # TLS: pass listener options here

Each broker gets its own generated config (listener on 127.0.0.1 only, anonymous allowed
unless the extra lines say otherwise, no persistence) and log file, and is stopped by PID.
"""

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/bin/mosquitto")
START_TIMEOUT_S = 10


def mosquitto_binary():
    for p in MOSQUITTO_PATHS:
        if os.path.exists(p):
            return p
    found = shutil.which("mosquitto")
    if not found:
        raise RuntimeError("mosquitto not found: apt-get install mosquitto (.ci/run does)")
    return found


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A running broker: unpacks as (host, port); has log_path, conf_path, pid, log()."""

    def __init__(self, host, port, proc, conf_path, log_path):
        self.host = host
        self.port = port
        self.proc = proc
        self.pid = proc.pid
        self.conf_path = conf_path
        self.log_path = log_path

    def __iter__(self):
        return iter((self.host, self.port))

    def log(self):
        try:
            return Path(self.log_path).read_text(errors="replace")
        except OSError:
            return ""


def _listening(host, port):
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def _stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@contextlib.contextmanager
def mosquitto(extra_config=(), tmp_dir=None, listener_options=(), attempts=3):
    """Start mosquitto on 127.0.0.1:<free port>; yield a Broker; stop it by PID.

    extra_config: lines appended to the config (global or for the listener, e.g.
    `cafile ...`, `certfile ...`, `keyfile ...`, `require_certificate true`,
    `password_file ...`, `allow_anonymous false`). They follow the listener line, so
    per-listener options apply to it. Another engineer's broker may grab the port
    between our check and mosquitto's bind: then a new port is tried."""
    own_dir = tmp_dir is None
    d = Path(tempfile.mkdtemp(prefix="mosq-")) if own_dir else Path(tmp_dir)
    host = "127.0.0.1"
    last_log = ""
    try:
        for _attempt in range(attempts):
            port = free_port()
            conf = d / ("mosquitto-%d.conf" % port)
            logf = d / ("mosquitto-%d.log" % port)
            lines = [
                # As root, mosquitto drops to the `mosquitto` user, which cannot read or
                # write a test's private directory: stay who we are.
                "user %s" % pwd.getpwuid(os.geteuid()).pw_name,
                "per_listener_settings false",
                "persistence false",
                "log_dest file %s" % logf,
                "log_type all",
                "connection_messages true",
                "listener %d %s" % (port, host),
            ]
            extra = list(extra_config) + list(listener_options)
            if not any(x.split()[:1] == ["allow_anonymous"] for x in extra):
                lines.append("allow_anonymous true")
            lines += extra
            conf.write_text("\n".join(lines) + "\n")
            proc = subprocess.Popen(
                [mosquitto_binary(), "-c", str(conf)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            try:
                deadline = time.monotonic() + START_TIMEOUT_S
                while proc.poll() is None and time.monotonic() < deadline:
                    if _listening(host, port):
                        break
                    time.sleep(0.05)
                if proc.poll() is None and _listening(host, port):
                    broker = Broker(host, port, proc, str(conf), str(logf))
                    yield broker
                    return
                last_log = logf.read_text(errors="replace") if logf.exists() else ""
            finally:
                _stop(proc)
                if proc.stderr:
                    err = proc.stderr.read().decode(errors="replace")
                    proc.stderr.close()
                    last_log += err
        raise RuntimeError("mosquitto did not start after %d attempts:\n%s" % (attempts, last_log))
    finally:
        if own_dir:
            shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def mosquitto_broker(tmp_path):
    """A plain-TCP mosquitto for one test (function scope); unpacks as (host, port)."""
    with mosquitto(tmp_dir=tmp_path) as b:
        yield b
