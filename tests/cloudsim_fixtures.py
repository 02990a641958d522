"""Pytest fixtures and helpers to run the cloud emulator (tools/cloudsim) in tests.

`cloudsim`: an emulator running in this process (its own loop thread) on free loopback
ports, with its PKI in the test's tmp_path; stopped at teardown (the Arduino cloud).
`cloudsim_factory`: the same for other clouds: `cloudsim_factory(clouds=["azure"])` (names
of tools/cloudsim/plugins modules, or Plugin objects), each started one stopped at teardown.
`cloudsim_process`: the same from the command line, as a subprocess (what `make demo` and a
real board use); stopped by PID at teardown.
`MqttProbe`: a paho-mqtt client that records what it receives, for driving the emulator
without a Tether device.

Use from a test module: `from cloudsim_fixtures import cloudsim  # noqa: F401`.
"""

import json
import os
import queue
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.cloudsim import CloudSim  # noqa: E402


@pytest.fixture
def cloudsim(tmp_path):
    sim = CloudSim(tmp_path / "cloudsim", dashboard=True).start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def cloudsim_factory(tmp_path):
    started = []

    def make(clouds=("arduino",), **kw):
        sim = CloudSim(tmp_path / ("cloudsim-%d" % len(started)), clouds=clouds, **kw)
        started.append(sim.start())
        return sim

    try:
        yield make
    finally:
        for sim in started:
            sim.stop()


def start_cloudsim_process(workdir, timeout=20, extra_args=()):
    """Start `python -m tools.cloudsim serve` on free ports; returns (Popen, info dict)."""
    info_file = Path(workdir) / "ports.json"
    if info_file.exists():
        info_file.unlink()
    cmd = [sys.executable, "-m", "tools.cloudsim", "--workdir", str(workdir), "serve"]
    cmd += ["--password-port", "0", "--certificate-port", "0", "--http-port", "0"]
    cmd += ["--info-file", str(info_file)] + list(extra_args)
    proc = subprocess.Popen(
        cmd,
        cwd=str(ROOT),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if info_file.exists():
            try:
                return proc, json.loads(info_file.read_text())
            except ValueError:
                pass  # being written
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    stop_process(proc)
    raise RuntimeError("cloudsim did not start:\n" + (proc.stdout.read() or ""))


def stop_process(proc, timeout=10):
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture
def cloudsim_process(tmp_path):
    proc, info = start_cloudsim_process(tmp_path / "cloudsim")
    try:
        yield info
    finally:
        stop_process(proc)


class MqttProbe:
    """A paho client standing in for a device: connects, records messages and the CONNACK."""

    def __init__(
        self,
        sim,
        client_id,
        username=None,
        password=None,
        port_kind="password",
        cert=None,
        keepalive=30,
        tls=True,
    ):
        self.messages = queue.Queue()
        self.connack = queue.Queue()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        if username is not None:
            self.client.username_pw_set(username, password)
        if tls:
            self.client.tls_set(
                ca_certs=str(sim.ca.cert_pem_path),
                certfile=str(cert[0]) if cert else None,
                keyfile=str(cert[1]) if cert else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        self.client.on_connect = lambda c, u, f, rc, p: self.connack.put(rc)
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, bytes(m.payload)))
        self.client.connect("127.0.0.1", sim.ports[port_kind], keepalive=keepalive)
        self.client.loop_start()

    # paho 2 reports MQTT 3.1.1 CONNACK return codes as MQTT 5 reason codes.
    _V311 = {0: 0, 0x84: 1, 0x85: 2, 0x88: 3, 0x86: 4, 0x87: 5}

    def connack_code(self, timeout=5):
        """The CONNACK return code as MQTT 3.1.1 numbers it (0 accepted, 5 not authorized)."""
        rc = self.connack.get(timeout=timeout)
        value = rc.value if hasattr(rc, "value") else int(rc)
        return self._V311.get(value, value)

    def subscribe(self, topic, qos=1, timeout=5):
        granted = queue.Queue()
        self.client.on_subscribe = lambda c, u, mid, codes, p: granted.put(codes[0])
        self.client.subscribe(topic, qos)
        code = granted.get(timeout=timeout)
        return code.value if hasattr(code, "value") else int(code)

    def publish(self, topic, payload, qos=1, timeout=5):
        info = self.client.publish(topic, payload, qos)
        info.wait_for_publish(timeout)

    def next(self, topic=None, timeout=5):
        """The next message (on `topic`, skipping others); raises queue.Empty after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise queue.Empty("no message on %s within %s s" % (topic, timeout))
            t, payload = self.messages.get(timeout=left)
            if topic is None or t == topic:
                return t, payload

    def nothing(self, topic, wait=0.5):
        """True when no message arrives on topic within `wait` seconds."""
        try:
            self.next(topic, wait)
        except queue.Empty:
            return True
        return False

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()
