"""`make bench`: Tether's memory, latency, throughput, start-up, size and loop-stall figures,
measured the same way every time on the MicroPython unix port (docs/performance.md).

    python -m bench.run [--runs N] [--quick] [--out bench/results.json] [--no-massif]

The device is bench/device_client.py on the unix port, running the library compiled to .mpy
(what a board holds); the cloud is the emulator (tools/cloudsim) in this process, on free
loopback ports. Every figure is the median of several runs, with min and max. Times also get
a ratio against bench/baseline_paho.py (paho-mqtt on CPython, same emulator, same run), so
that a slower machine shows as slower figures but similar ratios.

Benchmarks, not tests: nothing here fails on speed. A measurement that cannot be made
(e.g. no valgrind) is recorded as skipped with the reason; the exit status is 0 unless the
machinery itself broke.
"""

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools import bundle  # noqa: E402
from tools.cloudsim import CloudSim  # noqa: E402
from tools.cloudsim.board import micropython_binary  # noqa: E402

DEVICE_SCRIPT = ROOT / "bench" / "device_client.py"
BASELINE_SCRIPT = ROOT / "bench" / "baseline_paho.py"
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

# How much of everything: full (make bench) and quick (the smoke test, a few seconds).
PROFILES = {
    "full": {
        "runs": 5,
        "mem_runs": 5,
        "rtt_writes": 200,
        "local_changes": 50,
        "burst": 1000,
        "tput_vars": 5,
        "tput_ms": 3000,
        "heap_lo_kb": 16,
        "heap_hi_kb": 256,
        "heap_step_kb": 1,
        "massif_runs": 3,
    },
    "quick": {
        "runs": 1,
        "mem_runs": 1,
        "rtt_writes": 10,
        "local_changes": 5,
        "burst": 50,
        "tput_vars": 2,
        "tput_ms": 300,
        "heap_lo_kb": 16,
        "heap_hi_kb": 256,
        "heap_step_kb": 64,
        "massif_runs": 1,
    },
}


class BenchError(Exception):
    pass


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


# -- statistics ---------------------------------------------------------------------------


def summary(values, ndigits=1):
    """{"median", "min", "max", "n"} of a list of numbers (None when empty)."""
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return None
    n = len(vals)
    mid = vals[n // 2] if n % 2 else (vals[n // 2 - 1] + vals[n // 2]) / 2
    return {
        "median": round(mid, ndigits),
        "min": round(vals[0], ndigits),
        "max": round(vals[-1], ndigits),
        "n": n,
    }


def percentile(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    vals = sorted(values)
    k = max(0, min(len(vals) - 1, int(round(p / 100.0 * len(vals) + 0.5)) - 1))
    return vals[k]


def ratio(a, b):
    if a is None or b is None or not b:
        return None
    return round(a / b, 2)


FAILED_ATTEMPTS = []  # what made a run try again, for the report


def retry(fn, good=lambda r: True, attempts=3):
    """fn() until good(result), at most `attempts` times; a run that raised counts as bad.
    Returns the last result (None if the last attempt raised)."""
    r = None
    for i in range(attempts):
        try:
            r = fn()
        except (BenchError, TimeoutError, AssertionError, KeyError) as exc:
            log("attempt %d failed: %s" % (i + 1, str(exc).splitlines()[0]))
            FAILED_ATTEMPTS.append(str(exc).splitlines()[0])
            r = None
            continue
        if good(r):
            return r
    return r


# -- the device process ---------------------------------------------------------------------


class Device:
    """bench/device_client.py on the unix port; `BENCH <name> <json>` lines become values."""

    def __init__(self, cfg, libpath, heapsize_kb=None, wrapper=(), baseline=False):
        # The configuration goes in a file: the pip-installed unix port (a CPython
        # extension) dies with "FATAL: uncaught NLR" on a command line argument longer
        # than about 250 bytes.
        fd, self.cfg_path = tempfile.mkstemp(prefix="tether-bench-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(cfg, f)
        if baseline:  # bench/baseline_paho.py on CPython instead
            cmd = [sys.executable, str(BASELINE_SCRIPT), self.cfg_path]
        else:
            cmd = list(wrapper) + [micropython_binary()]
            if heapsize_kb:
                cmd += ["-X", "heapsize=%dK" % heapsize_kb]
            cmd += [str(DEVICE_SCRIPT), self.cfg_path]
        env = dict(os.environ)
        env["MICROPYPATH"] = ".frozen:" + str(libpath)
        self.values = {}
        self.lines = []
        self._cond = threading.Condition()
        self.t_popen = time.time_ns()
        self.proc = subprocess.Popen(
            cmd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            with self._cond:
                self.lines.append(line)
                if line.startswith("BENCH "):
                    parts = line.split(" ", 2)
                    if len(parts) == 3:
                        try:
                            self.values[parts[1]] = json.loads(parts[2])
                        except ValueError:
                            pass
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait(self, name, timeout):
        """The value of `name` once printed; BenchError on timeout or if the process ended."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while name not in self.values:
                left = deadline - time.monotonic()
                if left <= 0 or not self._reader.is_alive():
                    raise BenchError(
                        "device never reported %r; last output:\n%s"
                        % (name, "\n".join(self.lines[-15:]))
                    )
                self._cond.wait(min(left, 0.2))
            return self.values[name]

    def finish(self, timeout):
        """Exit status (None if it had to be killed)."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(2)
        try:
            os.unlink(self.cfg_path)
        except OSError:
            pass


# -- the bench ------------------------------------------------------------------------------


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

        while not ok(hi):
            lo, hi = hi, hi * 2
            if hi > 8192:
                return {"kb": None, "probes": probes, "note": "no heap size up to 8 MB worked"}
        if ok(lo):
            return {"kb": lo, "probes": probes, "note": "the lower bound itself passed"}
        while hi - lo > step:
            mid = (lo + hi) // 2
            if ok(mid):
                hi = mid
            else:
                lo = mid
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


# A stack frame inside mbedTLS (or MicroPython's binding to it): by function name or by
# the mbedTLS source file it is in (its static helpers have no mbedtls_ prefix).
_MBEDTLS_FRAME = re.compile(
    r": mbedtls_\w+ \(|\((ssl_\w+|x509\w*|bignum\w*|ecp\w*|ecdh|ecdsa|pk\w*|md|entropy\w*"
    r"|cipher\w*|ctr_drbg|hmac_drbg|gcm|aes\w*|asn1\w*|oid|rsa\w*|psa_\w+|pem|base64|sha\d*"
    r"|chacha\w*|poly1305|ccm|platform\w*|modtls_mbedtls)\.c:\d+\)"
)


def parse_massif(text):
    """{"peak": bytes, "mbedtls_peak": bytes} from a massif output file.

    peak: the largest heap total over all snapshots (malloc'd bytes, the GC heap and, here,
    the CPython process that hosts the unix port included). mbedtls_peak: in each detailed
    snapshot, the live bytes whose allocating function is in mbedTLS (_MBEDTLS_FRAME; the
    outermost such frame of each tree), maximised over snapshots.
    """
    peak = 0
    mbed_peak = 0
    for snap in text.split("#-----------\nsnapshot=")[1:]:
        m = re.search(r"mem_heap_B=(\d+)", snap)
        if m:
            peak = max(peak, int(m.group(1)))
        if "heap_tree=empty" in snap:
            continue
        total = 0
        skip_deeper = None
        for line in snap.splitlines():
            m = re.match(r"^( *)n\d+: (\d+) (.*)$", line)
            if not m:
                continue
            depth = len(m.group(1))
            if skip_deeper is not None and depth > skip_deeper:
                continue
            skip_deeper = None
            if _MBEDTLS_FRAME.search(m.group(3)):
                total += int(m.group(2))
                skip_deeper = depth
        mbed_peak = max(mbed_peak, total)
    return {"peak": peak, "mbedtls_peak": mbed_peak}


# -- 5. size ------------------------------------------------------------------------------


def snapshot_sources(dst):
    """Copy the library and firmware sources to dst/lib and dst/firmware, so that every
    figure of one run comes from the same code even while the tree is being edited."""
    dst = Path(dst)
    for rel in bundle.library_modules():
        (dst / "lib" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "lib" / rel, dst / "lib" / rel)
    (dst / "firmware").mkdir(parents=True, exist_ok=True)
    for name in ("tether_firmware.py", "boot.py", "main.py"):
        shutil.copy(ROOT / "firmware" / name, dst / "firmware" / name)
    return dst


def compile_tree(src, out, arch):
    """mpy-cross (tools/bundle.py's) every module of a snapshot: {path under lib: bytes}."""
    src, out = Path(src), Path(out)
    sizes_ = {}
    rels = sorted(str(p.relative_to(src / "lib")) for p in (src / "lib" / "tether").rglob("*.py"))
    for rel in rels + ["tether_firmware.py"]:
        source = src / "lib" / rel if rel.startswith("tether/") else src / "firmware" / rel
        dst = out / "lib" / (rel[:-3] + ".mpy")
        bundle.compile_module(source, dst, arch, rel)
        sizes_[rel[:-3] + ".mpy"] = dst.stat().st_size
    return sizes_


def sizes(src):
    """.mpy bytes per architecture, per module, and of the frozen manifest's contents."""
    src = Path(src)
    out = {"by_arch": {}, "modules": {}, "source_bytes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for arch in bundle.ARCHS:
            mpy = compile_tree(src, Path(tmp) / arch, arch)
            lib_only = sum(v for k, v in mpy.items() if k.startswith("tether/"))
            # manifest.py freezes the package, tether_firmware and boot.py/main.py
            frozen = sum(mpy.values())
            for name in ("boot.py", "main.py"):
                dst = Path(tmp) / arch / "frozen" / (name[:-3] + ".mpy")
                bundle.compile_module(src / "firmware" / name, dst, arch, name)
                frozen += dst.stat().st_size
            out["by_arch"][arch] = {
                "library_mpy": lib_only,
                "bundle_mpy": sum(mpy.values()),
                "frozen_manifest_mpy": frozen,
            }
            for k, v in mpy.items():
                out["modules"].setdefault(k, {})[arch] = v
    for p in sorted((src / "lib").rglob("*.py")):
        out["source_bytes"][str(p.relative_to(src / "lib"))] = p.stat().st_size
    fw = src / "firmware" / "tether_firmware.py"
    out["source_bytes"]["tether_firmware.py"] = fw.stat().st_size
    out["source_total"] = sum(out["source_bytes"].values())
    return out


# -- machine and versions -----------------------------------------------------------------


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        load = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "loadavg_at_start": load,
        "os": platform.platform(),
        "arch": platform.machine(),
    }


def versions():
    v = {"cpython": platform.python_version()}
    mp = subprocess.run(
        [
            micropython_binary(),
            "-c",
            "import sys,ssl;v=sys.implementation.version;"
            "print('%d.%d.%d%s' % (v[0], v[1], v[2], ('-' + v[3]) if len(v) > 3 and v[3] else ''),"
            "'(' + sys.version.split(';', 1)[-1].replace('MicroPython', '').strip() + ')');"
            "print(getattr(ssl,'MBEDTLS_VERSION',''))",
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    lines = mp.stdout.splitlines()
    v["micropython"] = lines[0].strip() if lines else "?"
    v["mbedtls"] = lines[1].strip() if len(lines) > 1 else "?"
    for dist in ("amqtt", "paho-mqtt", "mpy-cross"):
        try:
            from importlib.metadata import version

            v[dist] = version(dist)
        except Exception:
            v[dist] = "?"
    mosq = shutil.which("mosquitto")
    if mosq:
        p = subprocess.run([mosq, "-h"], capture_output=True, text=True, timeout=10)
        m = re.search(r"version (\S+)", p.stdout + p.stderr)
        v["mosquitto"] = m.group(1) if m else "?"
    else:
        v["mosquitto"] = "not installed (not used: the emulator's broker is amqtt)"
    sys.path.insert(0, str(ROOT / "lib"))
    from tether import __version__

    v["tether"] = __version__
    try:
        git = ["git", "-C", str(ROOT)]
        head = subprocess.run(
            git + ["rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        )
        dirty = subprocess.run(
            git + ["status", "--porcelain", "lib", "firmware"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        v["tether_commit"] = head.stdout.strip() + (
            "+local changes" if dirty.stdout.strip() else ""
        )
    except OSError:
        v["tether_commit"] = "?"
    return v


# -- the whole run ------------------------------------------------------------------------


def run_all(profile_name="full", runs=None, massif=True, workdir=None):
    p = dict(PROFILES[profile_name])
    if runs:
        p["runs"] = runs
        p["mem_runs"] = min(p["mem_runs"], runs)
        p["massif_runs"] = min(p["massif_runs"], runs)
    started = time.monotonic()
    results = {
        "profile": profile_name,
        "settings": p,
        "machine": machine(),
        "versions": versions(),
    }
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="tether-bench-")
        workdir = tmp.name
    b = Bench(workdir, p, massif)
    try:
        b.start()
        log("size")
        results["size"] = sizes(b.src)
        log("memory")
        results["memory"] = b.memory()
        log("smallest heap (binary search)")
        results["min_heap"] = {"tcp": b.min_heap(False), "tls": b.min_heap(True)}
        log("mbedTLS malloc (valgrind massif)")
        results["tls_malloc"] = b.tls_malloc()
        full = {"tls": [], "tcp": [], "baseline_tls": [], "baseline_tcp": []}
        for i in range(p["runs"]):
            for tls in (True, False):
                for baseline in (False, True):
                    key = ("baseline_" if baseline else "") + ("tls" if tls else "tcp")
                    log("run %d/%d: %s" % (i + 1, p["runs"], key))
                    r = retry(lambda t=tls, bl=baseline: b.full_run(t, bl))
                    if r is not None:
                        full[key].append(r)
                    else:
                        results.setdefault("failed_runs", []).append(key)
        results.update(collate(full))
    finally:
        b.stop()
        errors = sorted(set(b.broker_errors))
        results["emulator_loop_errors"] = {"count": len(b.broker_errors), "kinds": errors}
        results["failed_attempts"] = list(FAILED_ATTEMPTS)
        if tmp is not None:
            tmp.cleanup()
    results["duration_s"] = round(time.monotonic() - started, 1)
    return results


def _per_run(runs, key, fn):
    return [fn(r[key]) for r in runs if r.get(key)]


def collate(full):
    """Medians over runs; within a run, latency percentiles over its samples."""
    lat, tput, start, stalls = {}, {}, {}, {}
    for key, runs in full.items():
        lat[key] = {
            "rtt_p50_ms": summary(_per_run(runs, "rtt", lambda v: percentile(v, 50)), 2),
            "rtt_p95_ms": summary(_per_run(runs, "rtt", lambda v: percentile(v, 95)), 2),
            "rtt_max_ms": summary(_per_run(runs, "rtt", max), 2),
            "local_p50_ms": summary(_per_run(runs, "local", lambda v: percentile(v, 50)), 2),
            "local_p95_ms": summary(_per_run(runs, "local", lambda v: percentile(v, 95)), 2),
            "local_max_ms": summary(_per_run(runs, "local", max), 2),
        }
        tput[key] = {
            k: summary([r[k] for r in runs], 0)
            for k in ("tput_messages_s", "tput_records_s", "tput_reads_s")
        }
        start[key] = {
            k: summary([r[k] for r in runs], 1)
            for k in (
                "start_interpreter_ms",
                "start_connected_ms",
                "start_ready_ms",
                "start_first_value_ms",
                "connect_only_ms",
            )
        }
        if not key.startswith("baseline"):
            stalls[key] = {
                "connect_ms": summary([r["stall_connect_ms"] for r in runs], 0),
                "burst_ms": summary([r["stall_burst_ms"] for r in runs], 0),
                "burst_received": summary([r["burst_received"] for r in runs], 0),
                "burst_s": summary([r["burst_s"] for r in runs], 2),
            }
    return {"latency": lat, "throughput": tput, "startup": start, "stalls": stalls, "raw": full}


# -- the table ----------------------------------------------------------------------------


def _m(s, key="median"):
    return None if s is None else s.get(key)


def table_rows(res):
    """(figure, median, min, max, unit, ratio vs baseline) rows for the table."""
    rows = []

    def add(name, s, unit, base=None, invert=False):
        if s is None:
            rows.append((name, None, None, None, unit, None))
            return
        r = None
        if base is not None:
            r = ratio(_m(base), _m(s)) if invert else ratio(_m(s), _m(base))
        rows.append((name, _m(s), _m(s, "min"), _m(s, "max"), unit, r))

    mem = res["memory"]
    add("heap: library import (.mpy)", mem["import_delta_mpy"], "B")
    add("heap: library import (.py source)", mem["import_delta_source"], "B")
    for tname in ("tls", "tcp"):
        for n in (1, 10, 50):
            v = mem["by_vars"]["%s_%d" % (tname, n)]
            if n == 10 or tname == "tls":
                add("heap: connected, %d vars, %s" % (n, tname.upper()), v["heap_connected"], "B")
                add("heap: steady, %d vars, %s" % (n, tname.upper()), v["heap_steady"], "B")
    rows.append(
        ("heap: per variable (steady, TLS)", mem["per_variable_steady"], None, None, "B", None)
    )
    for tname in ("tcp", "tls"):
        h = res["min_heap"][tname]
        rows.append(("smallest -X heapsize, %s" % tname.upper(), h["kb"], None, None, "KB", None))
    tm = res["tls_malloc"]
    if "skipped" in tm:
        rows.append(
            ("mbedTLS malloc (outside GC heap)", "skipped: " + tm["skipped"], None, None, "", None)
        )
    else:
        add("mbedTLS malloc peak (massif)", tm["mbedtls_peak"], "B")
        add("malloc peak TLS - TCP (massif)", tm["tls_minus_tcp"], "B")
    lat, tp, st = res["latency"], res["throughput"], res["startup"]
    for tname in ("tls", "tcp"):
        T = tname.upper()
        bl, bt, bs = lat["baseline_" + tname], tp["baseline_" + tname], st["baseline_" + tname]
        me = lat[tname]
        add("write round trip p50, %s" % T, me["rtt_p50_ms"], "ms", bl["rtt_p50_ms"])
        add("write round trip p95, %s" % T, me["rtt_p95_ms"], "ms", bl["rtt_p95_ms"])
        add("write round trip max, %s" % T, me["rtt_max_ms"], "ms", bl["rtt_max_ms"])
        add("local change -> emulator p50, %s" % T, me["local_p50_ms"], "ms", bl["local_p50_ms"])
        add("local change -> emulator p95, %s" % T, me["local_p95_ms"], "ms", bl["local_p95_ms"])
        me = tp[tname]
        add(
            "throughput, %s: records/s" % T, me["tput_records_s"], "/s", bt["tput_records_s"], True
        )
        add(
            "throughput, %s: messages/s" % T,
            me["tput_messages_s"],
            "/s",
            bt["tput_messages_s"],
            True,
        )
        me = st[tname]
        add(
            "start: process -> interpreter up, %s" % T,
            me["start_interpreter_ms"],
            "ms",
            bs["start_interpreter_ms"],
        )
        add(
            "start: process -> connected, %s" % T,
            me["start_connected_ms"],
            "ms",
            bs["start_connected_ms"],
        )
        add("start: process -> discovery done, %s" % T, me["start_ready_ms"], "ms")
        add(
            "start: process -> first value at emulator, %s" % T,
            me["start_first_value_ms"],
            "ms",
            bs["start_first_value_ms"],
        )
    for tname in ("tls", "tcp"):
        T = tname.upper()
        add("longest loop stall: connect, %s" % T, res["stalls"][tname]["connect_ms"], "ms")
        add(
            "longest loop stall: %d incoming writes, %s" % (res["settings"]["burst"], T),
            res["stalls"][tname]["burst_ms"],
            "ms",
        )
    for arch, s in res["size"]["by_arch"].items():
        rows.append(("size: library .mpy, %s" % arch, s["library_mpy"], None, None, "B", None))
        rows.append(
            (
                "size: frozen manifest contents .mpy, %s" % arch,
                s["frozen_manifest_mpy"],
                None,
                None,
                "B",
                None,
            )
        )
    return rows


def _fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        if abs(v) >= 100:
            return "%d" % round(v)
        return "%.2f" % v if abs(v) < 10 else "%.1f" % v
    return str(v)


def format_table(res, markdown=False):
    rows = table_rows(res)
    head = ("figure", "median", "min", "max", "unit", "x baseline")
    body = [tuple(_fmt(c) if i else c for i, c in enumerate(r)) for r in rows]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in body]
        return "\n".join(lines)
    widths = [max(len(str(r[i])) for r in [head] + body) for i in range(len(head))]
    out = []
    for r in [head] + body:
        out.append(
            "  ".join(
                str(c).ljust(widths[i]) if i == 0 else str(c).rjust(widths[i])
                for i, c in enumerate(r)
            )
        )
    return "\n".join(out)


def format_details(res, markdown=False):
    """Per module: heap added at import (.mpy, unix port) and .mpy bytes per architecture."""
    mods = res["memory"].get("import_by_module", {})
    sizes_ = res["size"]["modules"]
    archs = list(res["size"]["by_arch"])
    same = all(len(set(v.values())) == 1 for v in sizes_.values())
    heap_of = {}
    for dotted, s in mods.items():
        path = dotted.replace(".", "/")
        key = path + "/__init__.mpy" if path + "/__init__.mpy" in sizes_ else path + ".mpy"
        heap_of[key] = s
    cols = ["all archs"] if same else archs
    head = ["module", "import heap (B)"] + [".mpy %s (B)" % a for a in cols]
    rows = []
    for path in sorted(sizes_):
        heap = heap_of.get(path)
        size_cells = [_fmt(sizes_[path].get(archs[0] if same else a)) for a in cols]
        rows.append([path, _fmt(heap["median"]) if heap else "-"] + size_cells)
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    return "\n".join(
        "  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r))
        for r in [head] + rows
    )


def header(res):
    m, v = res["machine"], res["versions"]
    return (
        "machine: %s, %s cores, %s, load average at start %s\n"
        "versions: MicroPython %s (mbedTLS %s), CPython %s, amqtt %s, paho-mqtt %s, "
        "mosquitto %s, Tether %s (%s)\n"
        "profile %s: median of %d runs (memory %d), %.0f s; runs tried again: %d, errors on "
        "the emulator's loop: %d"
        % (
            m["cpu"],
            m["cores"],
            m["os"],
            m.get("loadavg_at_start"),
            v["micropython"],
            v["mbedtls"],
            v["cpython"],
            v["amqtt"],
            v["paho-mqtt"],
            v["mosquitto"],
            v["tether"],
            v["tether_commit"],
            res["profile"],
            res["settings"]["runs"],
            res["settings"]["mem_runs"],
            res["duration_s"],
            len(res.get("failed_attempts", ())),
            res.get("emulator_loop_errors", {}).get("count", 0),
        )
    )


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, help="runs per figure (default 5; quick: 1)")
    ap.add_argument("--quick", action="store_true", help="tiny profile (smoke test)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results.json"))
    ap.add_argument("--no-massif", action="store_true", help="skip the valgrind massif runs")
    ap.add_argument("--markdown", action="store_true", help="print the table as markdown")
    ap.add_argument("--workdir", help="keep the emulator's files here (default: a temp dir)")
    args = ap.parse_args(argv)
    res = run_all(
        "quick" if args.quick else "full",
        runs=args.runs,
        massif=not args.no_massif,
        workdir=args.workdir,
    )
    Path(args.out).write_text(json.dumps(res, indent=1, sort_keys=True) + "\n")
    print(header(res))
    print(format_table(res, args.markdown))
    print()
    print(format_details(res, args.markdown))
    print("written to %s" % args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
