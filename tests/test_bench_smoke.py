"""`make bench` machinery in its tiny profile: it runs end to end and writes a well-formed
results file with every section. Never asserts on speed (benchmarks do not fail on it)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import run as bench  # noqa: E402

SUMMARY_KEYS = {"median", "min", "max", "n"}


def is_summary(s):
    return (
        isinstance(s, dict)
        and set(s) == SUMMARY_KEYS
        and s["n"] >= 1
        and s["min"] <= s["median"] <= s["max"]
    )


@pytest.mark.timeout(240)
def test_quick_bench_writes_every_section(tmp_path):
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--no-massif", "--out", str(out)],
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=220,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads(out.read_text())

    # the report states the machine and the versions
    assert res["machine"]["cores"] >= 1 and res["machine"]["cpu"]
    for k in ("micropython", "cpython", "amqtt", "paho-mqtt", "tether", "mbedtls"):
        assert res["versions"][k], k

    # 1. memory: import, connected and steady heap for 1/10/50 variables, per variable
    mem = res["memory"]
    assert is_summary(mem["import_delta_mpy"]) and is_summary(mem["import_delta_source"])
    assert set(mem["import_by_module"]) == set(bench.IMPORT_ORDER)
    assert all(is_summary(s) for s in mem["import_by_module"].values())
    for key in ("tls_1", "tls_10", "tls_50", "tcp_1", "tcp_10", "tcp_50"):
        for fig in ("heap_import", "heap_connected", "heap_steady"):
            assert is_summary(mem["by_vars"][key][fig]), (key, fig)
    assert mem["per_variable_steady"] > 0  # 50 variables cost more than one
    for t in ("tcp", "tls"):
        h = res["min_heap"][t]
        assert h["kb"] and h["probes"], h
        # the search brackets its answer: a smaller probe failed, the answer passed
        assert any(not ok and kb < h["kb"] for kb, ok in h["probes"]), h
        assert [h["kb"], True] in h["probes"], h
    assert res["tls_malloc"] == {"skipped": "--no-massif"}

    # 2-4, 6: latency, throughput, start-up, stalls, for Tether and the paho baseline
    for key in ("tls", "tcp", "baseline_tls", "baseline_tcp"):
        lat = res["latency"][key]
        for fig in ("rtt_p50_ms", "rtt_p95_ms", "rtt_max_ms", "local_p50_ms"):
            assert is_summary(lat[fig]), (key, fig)
        for fig in ("tput_messages_s", "tput_records_s"):
            assert is_summary(res["throughput"][key][fig]), (key, fig)
        st = res["startup"][key]
        assert st["start_connected_ms"]["median"] <= st["start_first_value_ms"]["median"]
    for key in ("tls", "tcp"):
        st = res["startup"][key]
        assert st["start_connected_ms"]["median"] <= st["start_ready_ms"]["median"]
        stall = res["stalls"][key]
        assert is_summary(stall["connect_ms"]) and is_summary(stall["burst_ms"])
        assert stall["burst_received"]["min"] == res["settings"]["burst"]  # none lost
        assert len(res["raw"][key][0]["rtt"]) == res["settings"]["rtt_writes"]

    # 5. size: per architecture, per module, frozen manifest
    size = res["size"]
    assert set(size["by_arch"]) == {"xtensawin", "armv7emdp", "armv6m"}
    for arch, s in size["by_arch"].items():
        assert 0 < s["library_mpy"] < s["bundle_mpy"] < s["frozen_manifest_mpy"], arch
        per_module = sum(v[arch] for k, v in size["modules"].items() if k.startswith("tether/"))
        assert per_module == s["library_mpy"]
    assert "tether/mqtt.mpy" in size["modules"]

    # 7. building blocks (bench/blocks.py): every registered module ran, none skipped
    from bench import blocks

    assert set(res["blocks"]) == {b.key for b in blocks.BLOCKS}, res["blocks"].keys()
    for key, entry in res["blocks"].items():
        assert "skipped" not in entry and entry["rows"], (key, entry)

    # the printed table carries every section
    for text in (
        "heap: connected, 10 vars, TLS",
        "smallest -X heapsize",
        "write round trip",
        "throughput",
        "start: process -> connected",
        "longest loop stall",
        "size: library .mpy, xtensawin",
        "machine:",
        "versions:",
    ):
        assert text in proc.stdout, text


def test_summary_and_percentile():
    assert bench.summary([3, 1, 2]) == {"median": 2, "min": 1, "max": 3, "n": 3}
    assert bench.summary([4, 1, 2, 3])["median"] == 2.5
    assert bench.summary([]) is None
    vals = list(range(1, 201))
    assert bench.percentile(vals, 50) == 100
    assert bench.percentile(vals, 95) == 190
    assert bench.percentile(vals, 100) == 200


MASSIF = """desc: --time-unit=B
cmd: micropython
time_unit: B
#-----------
snapshot=0
#-----------
time=0
mem_heap_B=1000
mem_heap_extra_B=0
mem_stacks_B=0
heap_tree=detailed
n2: 1000 (heap allocation functions) malloc/new/new[], --alloc-fns, etc.
 n0: 900 0x1: run_main (main.c:1)
 n0: 100 0x2: mbedtls_ssl_setup (ssl_tls.c:1410)
#-----------
snapshot=1
#-----------
time=10
mem_heap_B=1300
mem_heap_extra_B=0
mem_stacks_B=0
heap_tree=peak
n3: 1300 (heap allocation functions) malloc/new/new[], --alloc-fns, etc.
 n1: 900 0x1: calloc_wrapper (alloc.c:1)
  n0: 900 0x3: mbedtls_pk_setup (pk.c:2)
 n1: 250 0x2: x509_crt_parse_der_core (x509_crt.c:1117)
  n0: 250 0x4: mbedtls_x509_crt_parse_der (x509_crt.c:1200)
 n0: 150 0x5: mbedtls_mpi_grow (bignum.c:218)
#-----------
snapshot=2
#-----------
time=20
mem_heap_B=900
mem_heap_extra_B=0
mem_stacks_B=0
heap_tree=empty
"""


def test_parse_massif_attributes_mbedtls_frames_once():
    # The largest snapshot's mbedTLS bytes: 900 allocated through a wrapper on behalf of
    # mbedtls_pk_setup, 250 by a static x509 helper (counted once, not again for its
    # mbedtls_ caller) and 150 by mbedtls_mpi_grow; run_main's 900 in snapshot 0 is not.
    got = bench.parse_massif(MASSIF)
    assert got["peak"] == 1300
    assert got["mbedtls_peak"] == 900 + 250 + 150


@pytest.mark.timeout(180)
def test_massif_attributes_malloc_to_mbedtls_over_tls_only(tmp_path):
    # valgrind is in .ci/run's packages: the mbedTLS figure is measured, not assumed.
    b = bench.Bench(tmp_path, dict(bench.PROFILES["quick"]), massif=True)
    b.start()
    try:
        res = b.tls_malloc()
    finally:
        b.stop()
    assert "skipped" not in res, res
    # mbedTLS holds at least its record buffers (~16 KB) at some point over TLS...
    assert res["mbedtls_peak"]["median"] > 10000, res
    # ...and the TLS process mallocs more than the plain-TCP one at its peak
    assert res["tls_minus_tcp"]["median"] > 0, res
