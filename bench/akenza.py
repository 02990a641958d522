"""akenza figures (issue 13): token mint time, start to first uplink, smallest heap, and seed
001's own flow (PyJWT + paho on CPython) beside Tether's, against the akenza emulator (TLS).

    .venv/bin/python -m bench.akenza [--quick]

Rows:
- ES256 / RS256 token mint on the unix port, library from .mpy (ms, mean of 20);
- process start to the first uplink stored by the emulator (ms) and peak RSS (KB), for
  seed 001's flow on CPython, examples/akenza_uplink.py on CPython and on the unix port;
- heap (KB, .mpy) of tether.akenza's resident modules over the cloud base (own_modules);
- smallest `-X heapsize` (KB) for connect + 20 uplinks + 1 renewal (5 s token), from .mpy.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIB = ROOT / "lib"  # the library as .py source
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

MINT_SCRIPT = """
import sys, time
from tether.akenza.credentials import JwtCredentials
from tether.akenza.keyload import load_signer
import tether.p256_table  # kept by AkenzaClient for an ES256 key, as here
for path in sys.argv[1:]:
    with open(path, "rb") as f:
        s = load_signer(f.read())  # the client's path: on a board, p256 comes back per token
    c = JwtCredentials("dev-1", s)
    c.mint(1796000000)
    t0 = time.ticks_us()
    for i in range(20):
        c.mint(1796000000 + i)
    print("MINT", s.algorithm, time.ticks_diff(time.ticks_us(), t0) / 20000)
"""

HEAP_SCRIPT = """
import asyncio, gc, json, sys
with open(sys.argv[1]) as f:
    cfg = json.load(f)
from tether.akenza import AkenzaClient
c = AkenzaClient(cfg["id"], key=cfg["key"], host="127.0.0.1", port=cfg["port"], ca=cfg["ca"],
                 server_hostname="localhost", token_lifetime=5)

async def main():
    t = asyncio.create_task(c.run())
    for i in range(20):
        await c.publish({"n": i})
        await asyncio.sleep(0.25)  # 5 s: the renewal comes at 4 s
    ok = await c.flush(10000)
    for _ in range(50):
        if c.session.renewals:
            break
        await asyncio.sleep(0.1)
    gc.collect()
    print("HEAP", gc.mem_alloc())  # connected, after the renewal: what stays
    print("DONE", ok, c.counters["uplinks"], c.session.renewals, c.session.failures)
    c.stop()
    await t

asyncio.run(main())
"""

SEED_SCRIPT = """
import datetime, hashlib, ssl, sys
import jwt
import paho.mqtt.publish as publish
from cryptography.hazmat.primitives import serialization as ser

device_id, priv, pub, port, ca = sys.argv[1:6]
with open(pub, "rb") as f:
    spki = ser.load_pem_public_key(f.read()).public_bytes(
        ser.Encoding.DER, ser.PublicFormat.SubjectPublicKeyInfo)
now = datetime.datetime.now(tz=datetime.timezone.utc)
token = {"iat": now, "exp": now + datetime.timedelta(minutes=20),
         "aud": f"https://akenza.io/devices/{device_id}"}
with open(priv, "r") as f:
    password = jwt.encode(token, f.read(), algorithm="ES256",
                          headers={"kid": hashlib.sha256(spki).hexdigest()})
publish.single(f"/up/device/id/{device_id}", '{"temperature":22}', qos=1,
               hostname="127.0.0.1", port=int(port), client_id=device_id,
               tls={"ca_certs": ca, "cert_reqs": ssl.CERT_REQUIRED},
               auth={"username": "unused", "password": password})
"""


def compile_mpy(dst):
    from bench.core_memory import compile_mpy as compile_all

    return compile_all(ROOT / "lib", dst)


def _mp(script, lib, args=(), heap_kb=None, timeout=60):
    from mpy import micropython_binary

    cmd = [micropython_binary()]
    if heap_kb:
        cmd += ["-X", "heapsize=%dk" % heap_kb]
    env = dict(os.environ, MICROPYPATH=".frozen:" + str(lib))
    try:
        p = subprocess.run(
            cmd + [str(script)] + [str(a) for a in args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            errors="replace",
        )
        return p.stdout + p.stderr
    except subprocess.TimeoutExpired:
        return "TIMEOUT"


def mint_times(tmp, mpy, keys):
    script = Path(tmp) / "mint.py"
    script.write_text(MINT_SCRIPT)
    out = _mp(script, mpy, [keys["ES256"]["private_der"], keys["RS256"]["private_der"]])
    rows = {}
    for line in out.splitlines():
        if line.startswith("MINT "):
            _, alg, ms = line.split()
            rows["mint_%s_ms" % alg.lower()] = round(float(ms), 2)
    if len(rows) != 2:
        raise RuntimeError(out[-2000:])
    return rows


OWN_SCRIPT = """
import gc, sys
import tether.cloud.client, tether.credentials  # the core every cloud client loads
gc.collect()
b = gc.mem_alloc()
for name in sys.argv[1:]:
    __import__(name)
gc.collect()
print("OWN", gc.mem_alloc() - b)
"""

# The modules a connected client keeps beyond the core (measured on the heap scenario: what
# stays in sys.modules after connect + 20 uplinks + 1 renewal; hal.clock is the base's).
OWN_AKENZA = ["tether.akenza", "tether.akenza.client", "tether.akenza.credentials",
              "tether.p256_table"]  # fmt: skip


IMPORT_SCRIPT = """
import gc, sys
gc.collect()
b = gc.mem_alloc()
exec(sys.argv[1])
gc.collect()
print("IMPORT", gc.mem_alloc() - b)
"""


def import_heap_kb(tmp, lib, statement):
    """Heap (KB) a fresh interpreter holds after the user's import line, e.g.
    `from tether.akenza import AkenzaClient` (all it loads, the core included)."""
    script = Path(tmp) / "import.py"
    script.write_text(IMPORT_SCRIPT)
    out = _mp(script, lib, [statement])
    for line in out.splitlines():
        if line.startswith("IMPORT "):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(out[-2000:])


def own_modules_kb(tmp, mpy, names):
    """Heap (KB, .mpy) that a cloud's own resident modules cost over the cloud base."""
    script = Path(tmp) / "own.py"
    script.write_text(OWN_SCRIPT)
    out = _mp(script, mpy, names)
    for line in out.splitlines():
        if line.startswith("OWN "):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(out[-2000:])


def connected_heap_kb(script, lib, cfg_path, heap_kb=256, done="DONE True 20 1 0"):
    """Heap in use (KB, after gc.collect) at the end of the scenario, still connected."""
    out = _mp(script, lib, [cfg_path], heap_kb, 40)
    for line in out.splitlines():
        if line.startswith("HEAP ") and done in out:
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(out[-2000:])


def smallest_heap(script, mpy, cfg_path, lo=32, hi=256, step=4, done="DONE True 20 1 0"):
    from bench.heapsearch import smallest

    return smallest(lambda kb: done in _mp(script, mpy, [cfg_path], kb, 40), lo, hi, step)


def _hwm_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _rss_run(cmd, env, sim, dev_id):
    """(ms from process start to the emulator storing its uplink, peak RSS KB). The peak is
    VmHWM polled until exit (a child's ru_maxrss counts the parent's pages before exec)."""
    akenza = sim.clouds["akenza"]
    before = len(akenza.uplinks(dev_id))
    t0 = time.time()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    hwm = 0
    try:
        while p.poll() is None and time.time() - t0 < 30:
            hwm = max(hwm, _hwm_kb(p.pid) or 0)
            time.sleep(0.002)
        up = akenza.wait_uplink(dev_id, count=before + 1, timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
        p.wait(5)
    return round((up["t"] - t0) * 1000), hwm


def run(quick=False):
    from tools import akenza_keys
    from tools.cloudsim import CloudSim

    tmp = Path(tempfile.mkdtemp(prefix="tether-akenza-bench-"))
    rows = {}
    sim = CloudSim(tmp / "sim", clouds=["akenza"], dashboard=False).start()
    try:
        keys = {
            "ES256": akenza_keys.make_keys(str(tmp / "ec"), "dev-ec", "ES256"),
            "RS256": akenza_keys.make_keys(str(tmp / "rsa"), "dev-rsa", "RS256"),
        }
        sim.clouds["akenza"].add_device("dev-ec", open(keys["ES256"]["public_pem"]).read())
        mpy = compile_mpy(tmp / "mpy")
        rows.update(mint_times(tmp, mpy, keys))
        port = sim.ports["akenza"]
        ca_pem, ca_der = str(sim.ca.cert_pem_path), str(sim.ca.cert_der_path)
        seed = tmp / "seed.py"
        seed.write_text(SEED_SCRIPT)
        ec = keys["ES256"]
        py_env = dict(os.environ, PYTHONPATH=str(ROOT / "lib"))
        example = ROOT / "examples" / "akenza_uplink.py"
        runs = {
            "seed001_pyjwt_paho_cpython": [sys.executable, str(seed), "dev-ec",
                                           ec["private_pem"], ec["public_pem"], port, ca_pem],
            "tether_example_cpython": [sys.executable, str(example), "dev-ec",
                                       ec["private_pem"], "127.0.0.1", port, ca_pem, "localhost"],
        }  # fmt: skip
        for name, cmd in runs.items():
            ms, rss = _rss_run([str(c) for c in cmd], py_env, sim, "dev-ec")
            rows[name + "_first_uplink_ms"] = ms
            rows[name + "_rss_kb"] = rss
        from mpy import micropython_binary

        mp_env = dict(os.environ, MICROPYPATH=".frozen:" + str(mpy))
        cmd = [micropython_binary(), str(example), "dev-ec", ec["private_der"], "127.0.0.1",
               str(port), ca_der, "localhost"]  # fmt: skip
        ms, rss = _rss_run(cmd, mp_env, sim, "dev-ec")
        rows["tether_example_unix_mpy_first_uplink_ms"] = ms
        rows["tether_example_unix_mpy_rss_kb"] = rss
        rows["import_mpy_kb"] = import_heap_kb(tmp, mpy, "from tether.akenza import AkenzaClient")
        rows["own_modules_mpy_kb"] = own_modules_kb(tmp, mpy, OWN_AKENZA)
        if not quick:
            cfg = tmp / "cfg.json"
            cfg.write_text(json.dumps({"id": "dev-ec", "key": ec["private_der"], "port": port,
                                       "ca": ca_der}))  # fmt: skip
            script = tmp / "heap.py"
            script.write_text(HEAP_SCRIPT)
            rows["heap_mpy_kb_connect_20_uplinks_1_renewal"] = smallest_heap(script, mpy, cfg)
            rows["heap_py_kb_connect_20_uplinks_1_renewal"] = smallest_heap(script, LIB, cfg)
            rows["heap_connected_mpy_kb"] = connected_heap_kb(script, mpy, cfg)
    finally:
        sim.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    out = list(rows.items())
    for k, v in out:
        print("%-48s %s" % (k, v))
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    run(ap.parse_args().quick)
