"""Tether's Azure client against azure-iot-device 2.14 on CPython (issue 12's table).

    .venv/bin/python -m bench.azure_vs_sdk

Same machine, same emulator (tools/cloudsim Azure plug-in, TLS, SAS), one run each: the
client (tests/ref/azure_perf_client.py, one file for both: Tether's run resolves the SDK's
imports to tether.azure) registers with DPS, connects, sends MESSAGES QoS 1 messages one at
a time, then answers METHODS direct methods invoked from here one after the other.
Figures: RSS after connect, process start to "connected" (interpreter start, imports, DPS,
hub), telemetry messages/s, direct-method round trip p50 (as the service sees it).
"""

import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "lib"), str(ROOT)]

MESSAGES = 300
METHODS = 30


def tmp_err(which):
    return Path(tempfile.gettempdir()) / ("azure-perf-%s.log" % which)


def _one(sim, azure, python, which):
    reg = "%s-%s" % (which, uuid.uuid4().hex[:6])
    key = azure.add_enrollment(reg).key
    cfg = {
        "reg": reg,
        "key": key,
        "dps_host": azure.dps_host,
        "id_scope": azure.id_scope,
        "ca_file": str(sim.ca.cert_pem_path),
        "messages": MESSAGES,
        "serve_s": 30,
    }
    cmd = [python, str(ROOT / "tests" / "ref" / "azure_perf_client.py"), which, json.dumps(cfg)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=open(str(tmp_err(which)), "w"), text=True
    )
    lines = {}
    cond = threading.Condition()

    def read():
        for line in proc.stdout:
            word, _, rest = line.strip().partition(" ")
            with cond:
                lines[word] = (time.perf_counter(), rest)
                cond.notify_all()

    threading.Thread(target=read, daemon=True).start()

    def wait(word, timeout=60):
        with cond:
            cond.wait_for(lambda: word in lines or proc.poll() is not None, timeout)
        if word not in lines:
            raise RuntimeError("%s: no %s" % (which, word))
        return lines[word]

    try:
        t_conn, rss = wait("CONNECTED")
        _, rate = wait("RATE")
        wait("READY")
        dev = sim.device(reg, "azure")
        sim.registry.wait(lambda: "$iothub/methods/POST/#" in dev.subscriptions, 10)
        rtts = []
        for i in range(METHODS):
            s = time.perf_counter()
            status, _ = azure.invoke_method(reg, "echo", {"i": i}, timeout_s=10)
            rtts.append((time.perf_counter() - s) * 1000)
            assert status == 200
    finally:
        proc.kill()
        proc.wait(10)
    return {
        "rss_kb": int(rss),
        "start_to_connected_ms": (t_conn - t0) * 1000,
        "msgs_per_s": float(rate),
        "method_p50_ms": statistics.median(rtts),
    }


def run():
    from azure_emu import start_sim
    from refvenv import ref_python

    tmp = Path(tempfile.mkdtemp(prefix="azure-perf-"))
    sim, azure = start_sim(tmp / "sim")
    try:
        sdk = _one(sim, azure, ref_python("azure"), "sdk")
        tether = _one(sim, azure, sys.executable, "tether")
    finally:
        sim.stop()
    rows = []
    goals = {
        "rss_kb": ("RSS after connect (KB)", "<= 1/3", lambda t, s: t * 3 <= s),
        "start_to_connected_ms": (
            "start to hub connected, DPS (ms)",
            "<= 1/2",
            lambda t, s: t * 2 <= s,
        ),
        "msgs_per_s": ("telemetry QoS 1 (msg/s)", ">= 2x", lambda t, s: t >= 2 * s),
        "method_p50_ms": ("direct method round trip p50 (ms)", "<= 1/2", lambda t, s: t * 2 <= s),
    }
    print("%-36s %10s %10s %8s %s" % ("figure (CPython)", "Tether", "SDK 2.14", "goal", "met"))
    for k, (name, goal, ok) in goals.items():
        t, s = tether[k], sdk[k]
        met = ok(t, s)
        rows.append((name, t, s, goal, met))
        print("%-36s %10.1f %10.1f %8s %s" % (name, t, s, goal, "yes" if met else "NO"))
    return rows


if __name__ == "__main__":
    run()
