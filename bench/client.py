"""The client figures of `make bench` (memory, smallest heap, mbedTLS malloc, latency,
throughput, start-up, loop stalls): the emulator in this process, devices on the unix port."""

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

from bench.device import DEVICE_SCRIPT, Device
from bench.massif import parse_massif
from bench.sizes import compile_tree, snapshot_sources
from bench.stats import BenchError, retry, summary
from tools.cloudsim import CloudSim
from tools.cloudsim.board import micropython_binary

SECRET = "bench-secret"

# What a connected Arduino client imports, dependencies first: each module's figure is what
# it adds on top of those before it (tether.arduino: its __init__ pulls in client, records,
# protocol and scheduler). tether.arduino.roots is only imported when no CA is given.
IMPORT_ORDER = (
    "tether.compat",
    "tether.log",
    "tether.cbor",
    "tether.senml",
    "tether.mqtt_packet",
    "tether.mqtt_stream",
    "tether.mqtt",
    "tether.session",
    "tether.arduino",
    "tether.tlsctx",
    "tether.arduino.roots",
    "tether.stallmeter",
)


class Bench:
    def __init__(self, workdir, profile, massif=True):
        self.workdir = Path(workdir)
        self.p = profile
        self.massif = massif
        self.libpath = None
        self.src = None  # the snapshot of the sources every figure comes from
        self.srcpath = None
        self.sim = None
        self._seq = 0
        self._arrivals = {}  # thing id -> [(arrival unix s, [record names])]
        self.broker_errors = []  # errors on the emulator's event loop

    # setup

    def start(self):
        self.src = snapshot_sources(self.workdir / "src")
        self.srcpath = self.src / "lib"
        compile_tree(self.src, self.workdir / "x64", "x64")
        self.libpath = self.workdir / "x64" / "lib"
        self.sim = CloudSim(self.workdir / "cloudsim", plain_port=0, dashboard=False).start()
        store = self.sim.store
        original = store.record_values
        arrivals = self._arrivals

        def counting(thing_id, records, now=None):
            if now is not None:  # a device's push (the emulator stamps those)
                arrivals.setdefault(thing_id, []).append((now, [r["name"] for r in records]))
            return original(thing_id, records, now)

        store.record_values = counting

        # amqtt 0.12 sometimes fails a broadcast ("dictionary changed size during
        # iteration") when a client subscribes meanwhile; count those instead of letting
        # asyncio print a traceback each time (the runs that lost a message are retried).
        def on_loop_error(loop, context):
            exc = context.get("exception")
            self.broker_errors.append(repr(exc) if exc else context.get("message", "?"))

        self.sim.loop.call_soon_threadsafe(self.sim.loop.set_exception_handler, on_loop_error)

    def stop(self):
        if self.sim is not None:
            self.sim.stop()
            self.sim = None

    def new_device(self):
        return self.sim.add_device("bench-" + uuid.uuid4().hex[:12], secret=SECRET)

    def cfg(self, dev, mode, tls, **kw):
        c = {
            "mode": mode,
            "server": "localhost" if tls else "127.0.0.1",
            "port": self.sim.ports["password" if tls else "plain"],
            "tls": tls,
            "ca": str(self.sim.ca.cert_der_path),
            "device_id": dev.id,
            "secret": SECRET,
            "nvars": 10,
            "writes": 20,
            "pushes": 20,
            "timeout_s": 10,
            "thing_id": dev.thing_id,
            "ca_pem": str(self.sim.ca.cert_pem_path),
        }
        c.update(kw)
        return c

    def write(self, thing, name, value):
        self.sim.write(thing, name, value)

    def ctl(self, thing, command):
        self._seq += 1
        self.write(thing, "ctl", "%d %s" % (self._seq, command))

    # 1. memory

    def scenario(self, tls, nvars=10, heapsize_kb=None, wrapper=(), timeout=20, lib=None):
        """Connect, discover, 20 writes, 20 pushes; (ok, values)."""
        dev = self.new_device()
        cfg = self.cfg(dev, "scenario", tls, nvars=nvars)
        if wrapper:
            cfg["timeout_s"] = 60
        d = Device(cfg, lib or self.libpath, heapsize_kb, wrapper)
        try:
            try:
                d.wait("ready", timeout)
            except BenchError:
                return False, d.values
            for i in range(cfg["writes"]):
                self.write(dev.thing_id, "v0", 5000 + i)
                time.sleep(0.002)
            rc = d.finish(timeout if not wrapper else 120)
            return rc == 0 and "heap_steady" in d.values, d.values
        finally:
            d.stop()

    def import_heap(self, lib):
        dev = self.new_device()
        d = Device(self.cfg(dev, "import", False), lib)
        try:
            d.wait("heap_import", 20)
            return d.values["heap_import"] - d.values["heap_base"]
        finally:
            d.stop()

    def import_by_module(self):
        """Heap each library module adds when imported in dependency order (.mpy)."""
        env = dict(os.environ)
        env["MICROPYPATH"] = ".frozen:" + str(self.libpath)
        cmd = [micropython_binary(), str(DEVICE_SCRIPT), "--modules"] + list(IMPORT_ORDER)
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30)
        for line in proc.stdout.splitlines():
            if line.startswith("BENCH modules "):
                return dict(json.loads(line[len("BENCH modules ") :]))
        raise BenchError("module import costs: %s %s" % (proc.stdout, proc.stderr))

    def memory(self):
        res = {"import_delta_mpy": [], "import_delta_source": [], "by_vars": {}}
        per_module = {}
        for _ in range(self.p["mem_runs"]):
            for name, cost in self.import_by_module().items():
                per_module.setdefault(name, []).append(cost)
        for _ in range(self.p["mem_runs"]):
            res["import_delta_mpy"].append(self.import_heap(self.libpath))
            res["import_delta_source"].append(self.import_heap(self.srcpath))
        for tls in (True, False):
            tname = "tls" if tls else "tcp"
            for n in (1, 10, 50):
                runs = {
                    "heap_base": [],
                    "heap_import": [],
                    "heap_connected": [],
                    "heap_steady": [],
                }
                for _ in range(self.p["mem_runs"]):
                    ok, vals = retry(lambda t=tls, n=n: self.scenario(t, n), lambda r: r[0]) or (
                        False,
                        {},
                    )
                    if not ok:
                        raise BenchError("memory run failed (%s, %d vars): %s" % (tname, n, vals))
                    for k in runs:
                        runs[k].append(vals[k])
                res["by_vars"]["%s_%d" % (tname, n)] = {k: summary(v, 0) for k, v in runs.items()}
        out = {
            "import_by_module": {k: summary(v, 0) for k, v in per_module.items()},
            "import_delta_mpy": summary(res["import_delta_mpy"], 0),
            "import_delta_source": summary(res["import_delta_source"], 0),
            "by_vars": res["by_vars"],
        }
        for kind in ("connected", "steady"):
            one = res["by_vars"]["tls_1"]["heap_" + kind]["median"]
            fifty = res["by_vars"]["tls_50"]["heap_" + kind]["median"]
            out["per_variable_" + kind] = round((fifty - one) / 49.0, 0)
        return out

    def min_heap(self, tls):
        """Smallest -X heapsize (KB) at which the scenario passes: binary search."""
        lo, hi, step = self.p["heap_lo_kb"], self.p["heap_hi_kb"], self.p["heap_step_kb"]
        probes = []

        def ok(kb):
            # A failed probe runs again: a message lost by the emulator's broker (amqtt)
            # can make a good heap size look bad, never a bad one look good.
            for _ in range(2):
                good, _ = self.scenario(tls, 10, heapsize_kb=kb, timeout=15)
                if good:
                    break
            probes.append([kb, good])
            return good

        from bench.heapsearch import smallest

        hi = smallest(ok, lo, hi, step, grow_to=8192)
        if hi is None:
            return {"kb": None, "probes": probes, "note": "no heap size up to 8 MB worked"}
        # A GC heap near its limit fragments differently from run to run: confirm twice,
        # and step up until two runs in a row pass.
        for _ in range(5):
            if ok(hi) and ok(hi):
                break
            hi += step
        return {"kb": hi, "step_kb": step, "probes": probes}

    def massif_run(self, tls):
        """Peak malloc (outside the GC heap) under valgrind massif, with mbedTLS's share."""
        out = self.workdir / ("massif.%s.%d" % ("tls" if tls else "tcp", time.monotonic_ns()))
        wrapper = [
            shutil.which("valgrind"),
            "--tool=massif",
            "--detailed-freq=1",
            "--max-snapshots=1000",
            "--time-unit=B",
            "--threshold=0.01",
            "--depth=2",
            "--massif-out-file=%s" % out,
        ]
        ok, _ = self.scenario(tls, 10, heapsize_kb=256, wrapper=wrapper, timeout=120)
        if not ok or not out.exists():
            return None
        try:
            return parse_massif(out.read_text())
        finally:
            out.unlink()

    def tls_malloc(self):
        if not self.massif:
            return {"skipped": "--no-massif"}
        if not shutil.which("valgrind"):
            return {"skipped": "valgrind not installed (apt-get install valgrind)"}
        runs = {"tls": [], "tcp": []}
        for _ in range(self.p["massif_runs"]):
            for tls in (True, False):
                r = self.massif_run(tls)
                if r is not None:
                    runs["tls" if tls else "tcp"].append(r)
        if not runs["tls"] or not runs["tcp"]:
            return {"skipped": "the scenario failed under valgrind"}
        return {
            "mbedtls_peak": summary([r["mbedtls_peak"] for r in runs["tls"]], 0),
            "tls_peak_total": summary([r["peak"] for r in runs["tls"]], 0),
            "tcp_peak_total": summary([r["peak"] for r in runs["tcp"]], 0),
            "tls_minus_tcp": summary(
                [a["peak"] - b["peak"] for a, b in zip(runs["tls"], runs["tcp"])], 0
            ),
        }

    # 2-4, 6: the full device

    def full_run(self, tls, baseline=False):
        """One device (or baseline) process: start-up, round trips, local changes, burst
        and loop stalls (device only), throughput."""
        dev = self.new_device()
        thing = dev.thing_id
        d = Device(self.cfg(dev, "full", tls), self.libpath, baseline=baseline)
        r = {}
        try:
            ready = d.wait("ready", 20)
            connected = d.values["connected"]
            first = self.sim.wait_for_value(thing, "first", 1, timeout=10)
            assert first == 1
            first_at = None
            for rec_t, names in self._arrivals.get(thing, ()):
                if "first" in names:
                    first_at = rec_t * 1e9
                    break
            t0 = d.t_popen
            r["start_interpreter_ms"] = (d.values["start"] - t0) / 1e6
            r["start_connected_ms"] = (connected[1] - t0) / 1e6
            r["start_ready_ms"] = (ready - t0) / 1e6
            r["start_first_value_ms"] = (first_at - t0) / 1e6 if first_at else None
            r["connect_only_ms"] = (connected[1] - connected[0]) / 1e6
            if not baseline:
                r["stall_connect_ms"] = d.wait("stall_connect_ms", 10)

            # write round trip: emulator write -> on_write -> echo at the emulator
            rtts = []
            for i in range(1, self.p["rtt_writes"] + 1):
                s = time.perf_counter()
                self.write(thing, "echo_in", i)
                self.sim.wait_for_value(thing, "echo_out", i, timeout=10)
                rtts.append((time.perf_counter() - s) * 1000)
            r["rtt"] = rtts

            # local change -> at the emulator (device and emulator stamp with the host clock)
            n = self.p["local_changes"]
            self.ctl(thing, "local %d" % n)
            stamps = d.wait("local", 60)
            arrived = {}
            for t, v in self.sim.history(thing, "local"):
                arrived.setdefault(v, t)
            r["local"] = [
                (arrived[k + 1] * 1e9 - s) / 1e6 for k, s in enumerate(stamps) if k + 1 in arrived
            ]

            if not baseline:
                # a burst of incoming writes under the stall meter
                self.ctl(thing, "burst %d" % self.p["burst"])
                d.wait("burst_armed", 10)
                count = self.p["burst"]
                sim = self.sim

                async def burst():
                    for i in range(count):
                        await sim.cloud.inject_write(thing, [("sink", i + 1)])

                s = time.perf_counter()
                self.sim.call(burst, timeout=120)
                b = d.wait("burst", 90)
                if b["received"] != count:
                    raise BenchError("burst: %d of %d writes arrived" % (b["received"], count))
                r["burst_received"] = b["received"]
                r["burst_s"] = time.perf_counter() - s
                r["stall_burst_ms"] = b["stall_ms"]

            # throughput: on_read changes every variable every millisecond
            nv, ms = self.p["tput_vars"], self.p["tput_ms"]
            self.ctl(thing, "tput %d %d" % (nv, ms))
            t = d.wait("tput", ms / 1000 + 30)
            time.sleep(0.3)  # the last pack in flight
            r.update(self._throughput(thing, t, nv))

            self.ctl(thing, "quit")
            d.finish(15)
            r["counters"] = d.values.get("counters")
        finally:
            d.stop()
        return r

    def _throughput(self, thing, t, nv):
        names = {"t%d" % i for i in range(nv)}
        t0 = t["t0"] / 1e9
        msgs = recs = 0
        last = t0
        for at, rnames in self._arrivals.get(thing, ()):
            if at < t0:
                continue
            k = len([n for n in rnames if n in names])
            if k:
                msgs += 1
                recs += k
                last = at
        span = max(last - t0, 1e-3)
        return {
            "tput_messages_s": msgs / span,
            "tput_records_s": recs / span,
            "tput_reads_s": t["reads"] / ((t["t1"] - t["t0"]) / 1e9),
        }
