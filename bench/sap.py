"""SAP IoT on CPython: tether.sap.SAPIoTClient beside seed 002's paho client, same run.

    python -m bench.sap [--count N]

Both clients run in their own process against the SAP emulator plug-in (mutual TLS on
127.0.0.1, credentials from a bundle the emulator issued, converted by tools/sap_cert.py),
send N measures one at a time, each awaited until its ack on ack/{alternateId} arrives
(paho: a QoS 1 publish, then the matching ack message, as seed 002 would have to), and
report their peak RSS, measures/s and the ack latency p50 (publish call to ack, wall
clock). "over bare" subtracts a process that only imports ssl, asyncio and json.
Issue 14 asks: RSS at most 1/2 of paho's, measures/s at least 1x.

On the unix port, library from .mpy (skipped with --quick): the heap tether.sap's resident
modules cost over the cloud base, and the smallest `-X heapsize` (KB) for connect + 20
measures acked (mutual TLS, the bundle's RSA-2048 device key); issue 14 asks at most 80.
"""

import argparse
import asyncio
import json
import os
import queue
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ALT = "bench-dev"


def _report(rss_kb, lat, elapsed):
    lat.sort()
    print(
        "RESULT "
        + json.dumps(
            {
                "rss_kb": rss_kb,
                "per_s": len(lat) / elapsed,
                "p50_ms": lat[len(lat) // 2] * 1000,
            }
        ),
        flush=True,
    )


def _rss_kb():
    # Peak RSS of this process image: VmHWM (getrusage's ru_maxrss survives exec, so a
    # child of a big parent would report the parent's peak).
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


async def _tether(cfg):
    sys.path.insert(0, str(ROOT / "lib"))
    from tether import log
    from tether.sap import SAPIoTClient

    log.setLevel(log.ERROR)
    c = SAPIoTClient(
        ALT, "127.0.0.1", cfg["port"], cert=cfg["cert_der"], key=cfg["key_der"],
        ca=cfg["ca_der"], server_hostname="localhost",
    )  # fmt: skip
    task = asyncio.create_task(c.run())
    await c.wait_connected(10000)
    lat = []
    t0 = time.perf_counter()
    for i in range(cfg["count"]):
        s = time.perf_counter()
        assert await c.send_measures("env", [{"temperature": i}], "s1") == 202
        lat.append(time.perf_counter() - s)
    elapsed = time.perf_counter() - t0
    c.stop()
    await asyncio.sleep(0.05)
    task.cancel()
    _report(_rss_kb(), lat, elapsed)


def _paho(cfg):
    import ssl

    import paho.mqtt.client as mqtt

    acks = queue.Queue()
    up = queue.Queue()
    cl = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=ALT)
    cl.tls_set(ca_certs=cfg["ca_pem"], certfile=cfg["cert_pem"], keyfile=cfg["key_pem"],
               cert_reqs=ssl.CERT_REQUIRED)  # fmt: skip
    cl.on_connect = lambda c, u, f, rc, p: up.put(rc)
    cl.on_subscribe = lambda c, u, mid, codes, p: up.put("sub")
    cl.on_message = lambda c, u, m: acks.put(json.loads(m.payload))
    cl.connect("localhost", cfg["port"], keepalive=60)
    cl.loop_start()
    up.get(timeout=10)
    cl.subscribe("ack/" + ALT, 1)
    up.get(timeout=10)
    lat = []
    t0 = time.perf_counter()
    for i in range(cfg["count"]):
        s = time.perf_counter()
        body = {"capabilityAlternateId": "env", "sensorAlternateId": "s1"}
        body["measures"] = [{"temperature": i}]
        cl.publish("measures/" + ALT, json.dumps(body), 1)
        assert acks.get(timeout=10)["code"] == 202
        lat.append(time.perf_counter() - s)
    elapsed = time.perf_counter() - t0
    cl.disconnect()
    cl.loop_stop()
    _report(_rss_kb(), lat, elapsed)


HEAP_SCRIPT = """
import asyncio, gc, json, sys
with open(sys.argv[1]) as f:
    cfg = json.load(f)
from tether.sap import SAPIoTClient
c = SAPIoTClient(cfg["alt"], "127.0.0.1", cfg["port"], cert=cfg["cert_der"],
                 key=cfg["key_der"], ca=cfg["ca_der"], server_hostname="localhost")

async def main():
    t = asyncio.create_task(c.run())
    await c.wait_connected(20000)
    n = 0
    for i in range(20):
        if await c.send_measures("env", [{"temperature": i}], "s1") == 202:
            n += 1
    gc.collect()
    print("HEAP", gc.mem_alloc())  # connected, 20 measures acked: what stays
    print("DONE", n, c.session.failures)
    c.stop()
    await asyncio.sleep(0.1)

asyncio.run(main())
"""

HEAP_DONE = "DONE 20 0"  # 20 measures acked with 202, no failed connect

# What a connected SAPIoTClient keeps in sys.modules beyond the cloud base.
OWN_SAP = ["tether.sap", "tether.sap.acks", "tether.sap.client"]


def unix_rows(tmp, cfg_path):
    from bench.akenza import (
        LIB,
        compile_mpy,
        connected_heap_kb,
        import_heap_kb,
        own_modules_kb,
        smallest_heap,
    )

    mpy = compile_mpy(Path(tmp) / "mpy")
    script = Path(tmp) / "heap.py"
    script.write_text(HEAP_SCRIPT)
    return [
        ("import_mpy_kb", import_heap_kb(tmp, mpy, "from tether.sap import SAPIoTClient")),
        ("own_modules_mpy_kb", own_modules_kb(tmp, mpy, OWN_SAP)),
        ("heap_mpy_kb_connect_20_measures_acked", smallest_heap(script, mpy, cfg_path,
                                                                 done=HEAP_DONE)),
        ("heap_py_kb_connect_20_measures_acked", smallest_heap(script, LIB, cfg_path,
                                                                done=HEAP_DONE)),
        ("heap_connected_mpy_kb", connected_heap_kb(script, mpy, cfg_path, done=HEAP_DONE)),
    ]  # fmt: skip


def _child(kind, cfg_path):
    with open(cfg_path) as f:
        cfg = json.load(f)
    if kind == "tether":
        asyncio.run(_tether(cfg))
    elif kind == "paho":
        _paho(cfg)
    else:  # bare: what every client pays for the interpreter and these imports
        import asyncio as _a  # noqa: F401
        import ssl  # noqa: F401

        print("RESULT " + json.dumps({"rss_kb": _rss_kb()}), flush=True)


def _run_child(kind, cfg_path):
    out = subprocess.run(
        [sys.executable, "-m", "bench.sap", "--child", kind, str(cfg_path)],
        cwd=str(ROOT), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError("%s failed:\n%s%s" % (kind, out.stdout[-2000:], out.stderr[-2000:]))


def run(count=200, quick=False):
    sys.path.insert(0, str(ROOT))
    from tools import sap_cert
    from tools.cloudsim import CloudSim

    tmp = Path(tempfile.mkdtemp(prefix="tether-bench-sap-"))
    sim = CloudSim(tmp / "sim", clouds=["sap"], dashboard=False).start()
    try:
        sap = sim.clouds["sap"]
        sap.add_capability("env", [("temperature", "float")])
        sap.add_device(ALT, sensors={"s1": ["env"]})
        bundle = sap.issue_certificate(ALT)
        files = sap_cert.write(sap_cert.convert(bundle["pem"], bundle["secret"]), tmp / "dev")
        cfg = {
            "alt": ALT, "port": sim.ports["sap"], "count": count, "cert_der": files["cert.der"],
            "key_der": files["key.der"], "cert_pem": files["cert.pem"],
            "key_pem": files["key.pem"], "ca_der": str(sim.ca.cert_der_path),
            "ca_pem": str(sim.ca.cert_pem_path),
        }  # fmt: skip
        path = tmp / "cfg.json"
        path.write_text(json.dumps(cfg))
        bare = _run_child("bare", path)["rss_kb"]
        res = {k: _run_child(k, path) for k in ("paho", "tether")}
        unix = [] if quick else unix_rows(tmp, path)
    finally:
        sim.stop()
    rows = []
    print("%-8s %9s %10s %10s %8s" % ("client", "RSS KB", "over bare", "measures/s", "p50 ms"))
    for k in ("paho", "tether"):
        r = res[k]
        row = (k, r["rss_kb"], r["rss_kb"] - bare, round(r["per_s"], 1), round(r["p50_ms"], 2))
        rows.append(row)
        print("%-8s %9d %10d %10.1f %8.2f" % row)
    p, t = res["paho"], res["tether"]
    print(
        "tether/paho: RSS over bare %.2f (want <= 0.5), measures/s %.2f (want >= 1)"
        % ((t["rss_kb"] - bare) / max(1, p["rss_kb"] - bare), t["per_s"] / p["per_s"])
    )
    for k, v in unix:
        print("%-40s %s" % (k, v))
    return rows + unix


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--child", nargs=2)
    ap.add_argument("--quick", action="store_true", help="skip the unix-port heap figures")
    a = ap.parse_args()
    if a.child:
        _child(*a.child)
    else:
        run(a.count, a.quick)
    os._exit(0)  # the emulator's loop thread must not hold the exit
