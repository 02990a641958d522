"""The soak run (CPython only): random faults every 3-10 s for N seconds, then drain the
board's queue and report what arrived. `python -m tools.soak` (tools/soak.py) calls main().
"""

import sys

from tools.soak_faults import FAULTS, inject
from tools.soak_rig import Rig


def soak(seconds, seed, workdir, interp="unix", out=print):
    import random
    import time

    rnd = random.Random(seed)
    t0 = time.monotonic()

    def log(text):
        out("[%7.1f s] %s" % (time.monotonic() - t0, text))

    counts = {}
    with Rig(workdir, interp) as rig:
        b = rig.start_board(heap_every_s=10, run_s=seconds + 300, status_ms=500)
        b.wait(lambda s: s["state"] == "ready", 30, "first connection")
        log("board ready")
        while time.monotonic() - t0 < seconds:
            time.sleep(rnd.uniform(3, 10))
            if time.monotonic() - t0 >= seconds:
                break
            fault = rnd.choice(FAULTS)
            counts[fault] = counts.get(fault, 0) + 1
            inject(rig, fault, rnd, log)
            st = b.status or {}
            log(
                "  produced %s depth %s reconnects %s stall %s ms"
                % (st.get("produced"), st.get("depth"), st.get("reconnects"), st.get("stall_ms"))
            )
        log("faults over: draining")
        end = b.finish(120)
        v = rig.verdict()
    heap = end.get("heap_trend") or []
    report = {
        "seconds": round(time.monotonic() - t0),
        "seed": seed,
        "interpreter": interp,
        "faults": counts,
        "values_produced": v["produced"],
        "delivered": v["delivered"],
        "lost": v["lost"],
        "duplicates": v["duplicates"],
        "reconnects": end["reconnects"],
        "connect_attempts": end["attempts"],
        "failures_by_stage": end["failures_by_stage"],
        "link_drops": end["link_drops"],
        "bad_messages": end["bad_messages"],
        "store_dropped": end["dropped"],
        "longest_loop_stall_ms": end["stall_ms"],
        "stall_by_phase_ms": end["stall_by_phase"],
        "stall_events_over_50ms": end["stall_events"],
        # After gc.collect() every 10 s: what the board really keeps alive.
        "heap_free_min": min([h for _, h in heap]) if heap else None,
        # Sampled between collections (garbage included): the GC's high-water mark.
        "heap_free_min_uncollected": end["heap_min"],
        "heap_free_first_last": [heap[0][1], heap[-1][1]] if heap else None,
        "heap_trend": heap,
    }
    return report


def main(argv=None):
    import argparse
    import json
    import os
    import tempfile
    from pathlib import Path

    ap = argparse.ArgumentParser(description="Soak: random faults, then count every value")
    ap.add_argument(
        "--seconds", type=int, default=int(os.environ.get("SOAK_SECONDS", "600") or 600)
    )
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--interp", choices=("unix", "cpython"), default="unix")
    args = ap.parse_args(argv)
    # Stopped from outside (a CI timeout, kill PID, Ctrl-C even when started in the
    # background): unwind so the board, the broker and the proxy are stopped too.
    import signal

    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(2), "big")
    with tempfile.TemporaryDirectory(prefix="soak-") as d:
        report = soak(args.seconds, seed, Path(d), args.interp)
    print("SOAK REPORT")
    print(json.dumps(report, indent=1, sort_keys=True))
    return 0 if report["lost"] == 0 and report["values_produced"] > 0 else 1
