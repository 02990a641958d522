"""`make bench`: Tether's memory, latency, throughput, start-up, size and loop-stall figures,
measured the same way every time on the MicroPython unix port (docs/performance.md).

    python -m bench.run [--runs N] [--quick] [--out bench/results.json] [--no-massif]
                        [--no-blocks | --only-blocks]

The device is bench/device_client.py on the unix port, running the library compiled to .mpy
(what a board holds); the cloud is the emulator (tools/cloudsim) in this process, on free
loopback ports. Every figure is the median of several runs, with min and max. Times also get
a ratio against bench/baseline_paho.py (paho-mqtt on CPython, same emulator, same run), so
that a slower machine shows as slower figures but similar ratios.

Then the building blocks (bench/blocks.py): the figures of the small device modules (SAS,
BSON, zlib, P-256, RSA, JWT, ...), each from its own bench module, on the unix port and on
CPython beside a reference library.

The parts: bench/client.py (the client figures, the Bench class), device.py (one device
process), massif.py (valgrind's output), sizes.py (.mpy sizes), machine.py (machine and
versions), report.py (tables), stats.py (summaries, retries), blocks.py (the building
blocks); this file runs them in order and writes bench/results.json.

Benchmarks, not tests: nothing here fails on speed. A measurement that cannot be made
(e.g. no valgrind) is recorded as skipped with the reason; the exit status is 0 unless the
machinery itself broke.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The pieces, and the names tests and users reach through bench.run.
from bench import blocks  # noqa: E402
from bench.client import IMPORT_ORDER, Bench  # noqa: E402, F401
from bench.machine import machine, versions  # noqa: E402
from bench.massif import parse_massif  # noqa: E402, F401
from bench.report import (  # noqa: E402, F401
    collate,
    format_details,
    format_table,
    header,
    table_rows,
)
from bench.sizes import compile_tree, sizes, snapshot_sources  # noqa: E402, F401
from bench.stats import (  # noqa: E402, F401
    FAILED_ATTEMPTS,
    BenchError,
    log,
    percentile,
    ratio,
    retry,
    summary,
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


def run_all(
    profile_name="full", runs=None, massif=True, workdir=None, with_client=True, with_blocks=True
):
    """The whole bench. with_client=False skips the emulator part (memory, latency,
    throughput, start-up, size), with_blocks=False the building blocks."""
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
    if with_client:
        run_client(results, p, massif, workdir)
    if with_blocks:
        log("building blocks")
        results["blocks"] = blocks.run_blocks(profile_name == "quick", log=log)
    results["duration_s"] = round(time.monotonic() - started, 1)
    return results


def run_client(results, p, massif, workdir):
    """The client figures against the emulator, into results."""
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


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, help="runs per figure (default 5; quick: 1)")
    ap.add_argument("--quick", action="store_true", help="tiny profile (smoke test)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results.json"))
    ap.add_argument("--no-massif", action="store_true", help="skip the valgrind massif runs")
    ap.add_argument("--markdown", action="store_true", help="print the table as markdown")
    ap.add_argument("--workdir", help="keep the emulator's files here (default: a temp dir)")
    only = ap.add_mutually_exclusive_group()
    only.add_argument("--no-blocks", action="store_true", help="skip the building blocks")
    only.add_argument("--only-blocks", action="store_true", help="only the building blocks")
    args = ap.parse_args(argv)
    res = run_all(
        "quick" if args.quick else "full",
        runs=args.runs,
        massif=not args.no_massif,
        workdir=args.workdir,
        with_client=not args.only_blocks,
        with_blocks=not args.no_blocks,
    )
    Path(args.out).write_text(json.dumps(res, indent=1, sort_keys=True) + "\n")
    print(header(res))
    if "memory" in res:
        print(format_table(res, args.markdown))
        print()
        print(format_details(res, args.markdown))
    if "blocks" in res:
        print()
        print("building blocks (bench/blocks.py; times per call)")
        print(blocks.format_blocks(res["blocks"], args.markdown))
    print("written to %s" % args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
