"""Astarte figures (issue 15): Tether's DeviceMqtt beside astarte-device-sdk 0.14, same run,
same emulator (TLS pairing API + mutual-TLS broker on 127.0.0.1).

    .venv/bin/python -m bench.astarte [--quick] [--reps N] [--connect]

Each client runs as its JSON-lines driver (tests/ref/astarte_*_driver.py). Rows per client:
- first connect (ms): "connect" command to on_connected, with an empty persistency dir
  (Tether: P-256 key + CSR made on the device, pairing, TLS, resync);
- connect (paired) to first datastream (ms): a second process on the same persistency dir,
  started and answering (its imports done), then "connect" to the first guaranteed
  datastream stored by the emulator (the goal's figure); spawn_to_first_ms counts from the
  process start instead (interpreter and imports included: what this bench measured before);
  one run is at the mercy of a shared machine's load, so a series of N such connects per
  CPython client, the clients taking turns, gives the table's figure (the median; min, all
  values and the load average are printed). --connect runs only that series;
- RSS after connect (KB): VmRSS of the driver process once connected, and the same minus a
  bare process of the same interpreter that only imported ssl, asyncio and json (as
  bench.sap): the total is what the issue's goal names; "over bare" is what the client adds;
- guaranteed datastream messages/s: N sends written at once, until the emulator stored N;
Both CPython clients run from bytecode: the SDK's venv has its .pyc from pip, and Tether's
library is compiled into a copy first (with PYTHONDONTWRITEBYTECODE set, as under `make`,
it would otherwise be compiled from source at every start, ~80 ms of the connect).
and on the unix port, library from .mpy: the smallest `-X heapsize` (KB) for a first boot
(key + CSR + pairing + connect) + 20 guaranteed datastreams + 1 server property.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

SENSORS = "org.tether.test.Sensors"

HEAP_SCRIPT = """
import asyncio, gc, json, sys
with open(sys.argv[1]) as f:
    cfg = json.load(f)
from tether.astarte import DeviceMqtt
from tether.bson import UTCDateTime
got = []
d = DeviceMqtt(cfg["id"], "test", cfg["secret"], cfg["url"], cfg["dir"], ca=cfg["ca"])
d.add_interfaces_from_dir(cfg["ifaces"])
d.set_events_callbacks(on_data_received=lambda dev, i, p, v: got.append(v))

async def main():
    d.connect()
    await asyncio.sleep(0)
    ok = await d.wait(lambda: d.connected, 20000)
    for i in range(20):
        d.send("org.tether.test.Sensors", "/s1/count", i, UTCDateTime(1700000000000 + i))
    ok = ok and await d.flush(20000) and await d.wait(lambda: got, 10000)
    # the purge applied, nothing refused (a ZlibError for want of RAM counts as a failure)
    ok = ok and d.counters["bad_messages"] == 0 and d.counters["purged"] == 0
    gc.collect()
    print("HEAP", gc.mem_alloc())  # still connected: what stays
    print("DONE", ok, d.counters["sent"], len(got))
    await d.adisconnect()

asyncio.run(main())
"""


BARE = (
    "import ssl, asyncio, json\n"
    "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmRSS:')][0])"
)


def _bare_rss_kb(python):
    import subprocess

    out = subprocess.run([python, "-c", BARE], capture_output=True, text=True, timeout=30)
    return int(out.stdout.strip())


def _compiled_lib(tmp):
    """A copy of lib/ with its bytecode, as an installed package has it."""
    import compileall
    import shutil

    lib = Path(tmp) / "lib-pyc"
    shutil.copytree(ROOT / "lib", lib, ignore=shutil.ignore_patterns("__pycache__"))
    compileall.compile_dir(str(lib), quiet=1)
    return lib


def _tether_cpython(tmp, sim):
    """tests/test_astarte_client.tether_client for CPython, from the compiled copy."""
    from test_astarte_sdk_fidelity import Driver

    lib = _compiled_lib(tmp)
    driver = ROOT / "tests" / "ref" / "astarte_tether_driver.py"
    ca = str(sim.ca.cert_pem_path)

    def start(device_id, realm, pairing_url, persistency_dir, interfaces_dir):
        cmd = [sys.executable, str(driver), device_id, realm, pairing_url]
        cmd += [str(persistency_dir), str(interfaces_dir), ca]
        env = dict(os.environ, PYTHONPATH=str(lib), PYTHONUNBUFFERED="1")
        return Driver(cmd, env, str(Path(tmp) / "tether-bench.log"))

    start.python = sys.executable
    return start


def _rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def _connect(client, secret):
    mark = client.mark()
    t0 = time.monotonic()
    client.call("connect", secret=secret)
    client.wait(lambda o: o.get("ev") == "connected", 30, mark, "on_connected")
    return (time.monotonic() - t0) * 1000


def _paired(sim, start, workdir):
    """A new device registered and connected once (first connect), then a second process on
    its persistency dir: (first_ms, paired_to_first_ms, spawn_to_first_ms, driver, id). The
    driver is left running (the caller measures more with it, then closes it)."""
    from test_astarte_sdk_fidelity import new_device_id

    astarte = sim.clouds["astarte"]
    ifaces = ROOT / "tests" / "ref" / "astarte_interfaces"
    persist = Path(workdir)
    persist.mkdir(parents=True, exist_ok=True)
    device_id = new_device_id()
    c = start(device_id, "test", astarte.pairing_url, persist, ifaces)
    try:
        secret = c.call("register", jwt=astarte.agent_jwt())
        first = _connect(c, secret)
        c.call("disconnect")
    finally:
        c.close()
    t_spawn = time.monotonic()
    c = start(device_id, "test", astarte.pairing_url, persist, ifaces)
    try:
        c.try_call("is_connected")  # any reply: the process is up, its imports done
        t0 = time.monotonic()
        c.call("connect", secret=secret)
        c.wait(lambda o: o.get("ev") == "connected", 30, 0, "on_connected")
        # The SDK's first send right after on_connected can overtake its own QoS 2
        # introspection (paho's thread), and the server refuses data before introspection.
        dev = astarte.find(device_id, "test")
        astarte.wait(lambda: dev.introspection, 30)
        c.call("send", interface=SENSORS, path="/s0/count", value=1, timestamp_ms=1700000000000)
        astarte.wait_datastream(device_id, SENSORS, "/s0/count", timeout=30)
        to_first = (time.monotonic() - t0) * 1000
        from_spawn = (time.monotonic() - t_spawn) * 1000
    except BaseException:
        c.close()
        raise
    return first, to_first, from_spawn, c, device_id


def _measure(sim, name, start, workdir, n):
    import json

    astarte = sim.clouds["astarte"]
    first, to_first, from_spawn, c, device_id = _paired(sim, start, Path(workdir) / name)
    try:
        rss = _rss_kb(c.proc.pid)
        before = len(astarte.datastreams(device_id, SENSORS))
        lines = "".join(
            json.dumps({"id": 100000 + i, "op": "send", "interface": SENSORS,
                        "path": "/s1/count", "value": i, "timestamp_ms": 1700000000000 + i})
            + "\n"
            for i in range(n)
        )  # fmt: skip
        t0 = time.monotonic()
        c.proc.stdin.write(lines)
        c.proc.stdin.flush()
        astarte.wait(lambda: len(astarte.datastreams(device_id, SENSORS)) >= before + n, 120)
        rate = n / (time.monotonic() - t0)
    finally:
        c.close()
    row = {"client": name, "first_connect_ms": round(first), "paired_to_first_ms":
           round(to_first), "spawn_to_first_ms": round(from_spawn), "rss_kb": rss,
           "guaranteed_msg_s": round(rate)}  # fmt: skip
    python = getattr(start, "python", None)
    if python is not None:
        row["bare_rss_kb"] = bare = _bare_rss_kb(python)
        row["rss_over_bare_kb"] = rss - bare
    return row


def _load():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def paired_series(sim, clients, workdir, reps):
    """The paired connect -> first datastream `reps` times per client, the clients taking
    turns (a load that comes and goes hits them alike): {name: sorted ms}, and the 1-minute
    load averages seen (the machine may be shared: say so beside the figures)."""
    out = {name: [] for name, _ in clients}
    loads = []
    for r in range(reps):
        loads.append(_load())
        for i, (name, start) in enumerate(clients):
            _, ms, _, c, _ = _paired(sim, start, Path(workdir) / ("s%d-%d" % (r, i)))
            c.close()
            out[name].append(round(ms))
    return {k: sorted(v) for k, v in out.items()}, loads


def _median(v):
    return v[len(v) // 2]


def goals(rows):
    """Issue 15's CPython goals, Tether over the SDK: (figure, ratio, goal, met)."""
    sdk, ours = rows[0], rows[1]
    out = []
    for key, goal, smaller in (
        ("rss_kb", 1 / 3, True),
        ("rss_over_bare_kb", 1 / 3, True),
        ("paired_to_first_ms", 1 / 2, True),
        ("guaranteed_msg_s", 2.0, False),
    ):
        if key in sdk and key in ours and sdk[key]:
            r = ours[key] / sdk[key]
            out.append((key, round(r, 2), round(goal, 2), r <= goal if smaller else r >= goal))
    return out


HEAP_DONE = "DONE True 20 1"  # 20 datastreams delivered, the server property received


def heap_trial(sim, tmp, lib, script, kb, timeout=60):
    """One first boot of the heap scenario in a `kb` KB heap (a new device id, registered,
    with one server property waiting): the micropython output."""
    import json
    import shutil

    from test_astarte_sdk_fidelity import new_device_id

    from bench.akenza import _mp

    astarte = sim.clouds["astarte"]
    device_id = new_device_id()
    secret = astarte.register(device_id)
    astarte.set_server_property(device_id, "org.tether.test.ServerSettings", "/threshold",
                                1.5, notify=False)  # fmt: skip
    d = Path(tmp) / ("heap-%d" % kb)
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir()
    cfg = {"id": device_id, "secret": secret, "url": astarte.pairing_url, "dir": str(d),
           "ifaces": str(ROOT / "tests" / "ref" / "astarte_interfaces"),
           "ca": str(sim.ca.cert_pem_path)}  # fmt: skip
    (d / "cfg.json").write_text(json.dumps(cfg))
    return _mp(script, lib, [d / "cfg.json"], kb, timeout)


def connected_heap_kb(out):
    """The HEAP line of a finished trial, in KB (None if it did not finish)."""
    for line in out.splitlines():
        if line.startswith("HEAP ") and HEAP_DONE in out:
            return round(int(line.split()[1]) / 1024, 1)
    return None


def smallest_heap(sim, tmp, lo=48, hi=320, step=8, lib=None):
    from bench.akenza import compile_mpy

    lib = lib or compile_mpy(Path(tmp) / "mpy")
    script = Path(tmp) / "heap.py"
    script.write_text(HEAP_SCRIPT)

    from bench.heapsearch import smallest

    def ok(kb):
        # A pass must pass twice: keys, ids and timing vary from run to run.
        return all(HEAP_DONE in heap_trial(sim, tmp, lib, script, kb) for _ in range(2))

    # From source the first boot needs more than twice the .mpy figure: hi may double.
    return smallest(ok, lo, hi, step, grow_to=1024)


def run(quick=False, reps=None, connect_only=False):
    """reps: paired connects per CPython client, taken in turns (default 5 quick, 9 full);
    their median is the table's paired_to_first_ms (one run is at the mercy of the load).
    connect_only: only that series (no throughput, unix port or heap search)."""
    from refvenv import ref_python
    from test_astarte_client import tether_client
    from test_astarte_sdk_fidelity import sdk_client

    from tools.cloudsim import CloudSim

    n = 100 if quick else 500
    reps = reps or (5 if quick else 9)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-astarte-") as tmp:
        sim = CloudSim(Path(tmp) / "cloudsim", clouds=["astarte"], dashboard=False).start()
        try:
            sim.clouds["astarte"].add_interfaces_dir(ROOT / "tests" / "ref" / "astarte_interfaces")
            sdk = sdk_client(tmp, sim)
            sdk.python = ref_python("astarte")
            clients = [
                ("sdk-0.14 (CPython)", sdk),
                ("tether (CPython)", _tether_cpython(tmp, sim)),
                ("tether (unix port)", tether_client(tmp, sim, "micropython")),
            ]
            series, loads = paired_series(sim, clients[:2], Path(tmp) / "series", reps)
            for name, v in series.items():
                print("paired connect -> first datastream, %s: median %d ms, min %d, all %s"
                      % (name, _median(v), v[0], v))  # fmt: skip
            print("load average (1 min) during the series: %s" % loads)
            if connect_only:
                rows = [{"client": k, "paired_to_first_ms": _median(v)} for k, v in series.items()]
                _print_goals(rows)
                return rows
            for name, start in clients:
                d = os.path.join(tmp, "w-" + str(len(rows)))
                os.mkdir(d)
                # The unix port's client keeps at most QUEUE_MAX (64) sends in RAM without a
                # store (beyond, the oldest is dropped and counted): a burst of 60 there.
                burst = n if "unix" not in name else min(n, 60)
                rows.append(_measure(sim, "c%d" % len(rows), start, d, burst))
                rows[-1]["client"] = name
                if name in series:
                    rows[-1]["paired_once_ms"] = rows[-1]["paired_to_first_ms"]
                    rows[-1]["paired_to_first_ms"] = _median(series[name])
                print(rows[-1], flush=True)
            heap = smallest_heap(sim, tmp)
            heap_py = smallest_heap(sim, tmp, lib=ROOT / "lib")
            from bench.akenza import compile_mpy, import_heap_kb

            script = Path(tmp) / "heap.py"
            mpy = compile_mpy(Path(tmp) / "mpy")
            out = heap_trial(sim, tmp, mpy, script, 320)
            connected = connected_heap_kb(out)
            imported = import_heap_kb(tmp, mpy, "from tether.astarte import DeviceMqtt")
        finally:
            sim.stop()
    rows.append({"client": "tether (unix port, .mpy)", "min_heap_kb": heap,
                 "min_heap_py_kb": heap_py, "connected_heap_kb": connected,
                 "import_heap_kb": imported})  # fmt: skip
    print(
        "unix port: import",
        imported,
        "KB; smallest heap (first boot + 20 datastreams + 1 property): .mpy",
        heap,
        "KB, .py",
        heap_py,
        "KB; heap in use at the end, still connected:",
        connected,
        "KB",
    )
    keys = ["client", "first_connect_ms", "paired_to_first_ms", "spawn_to_first_ms", "rss_kb",
            "bare_rss_kb", "rss_over_bare_kb", "guaranteed_msg_s"]  # fmt: skip
    print(" | ".join(keys))
    for r in rows[:-1]:
        print(" | ".join(str(r.get(k, "-")) for k in keys))
    print("(paired_to_first_ms: the median of the series above for the CPython clients)")
    _print_goals(rows)
    return rows


def _print_goals(rows):
    # The RSS goal is read on the total (what the issue says); "over bare" beside it.
    for key, ratio, goal, met in goals(rows):
        print("goal %s: tether/sdk %.2f (goal %s %.2f): %s"
              % (key, ratio, ">=" if key == "guaranteed_msg_s" else "<=", goal,
                 "met" if met else "NOT met"))  # fmt: skip


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reps", type=int, default=None, help="paired connects per client")
    ap.add_argument("--connect", action="store_true", help="only the paired-connect series")
    a = ap.parse_args()
    run(a.quick, a.reps, a.connect)
