"""Token and key figures (issue 11): ES256/RS256 JWT minting, key loading, P-256 keygen + CSR.

    .venv/bin/python -m bench.tokens [--runs N] [--quick]

Each time is the median of N runs of the same script: on the MicroPython unix port with the
library compiled to .mpy (x64, what a board runs, minus the speed), on CPython with tether
from lib/, and beside them PyJWT + cryptography (OpenSSL) doing the same job. Also the
smallest `-X heapsize` in which the unix port (from .mpy) loads a key and mints an ES256 JWT,
and in which it generates a key, makes a CSR and mints a JWT; and each module's .mpy bytes.
Benchmarks, not tests: nothing here fails on speed.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIB = ROOT / "lib"
for _p in (str(ROOT), str(LIB), str(ROOT / "tests")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from tools import bundle  # noqa: E402

MODULES = ("der", "keys", "csr", "jwt")
ARCHS = ("xtensawin", "armv7emsp", "armv6m")
CLAIMS = {"iat": 1700000000, "exp": 1700001200, "aud": "https://akenza.io/devices/dev-1"}
SUBJECT = [("CN", "realm/2TBn-jNESuuHamE2Zo1anA"), ("O", "Devices")]

# Runs as-is on both interpreters: argv = what, iterations, key file dir. Prints one JSON line
# of per-iteration microseconds.
SCRIPT = """
import sys, json, gc
try:
    from time import ticks_us, ticks_diff
except ImportError:
    import time
    def ticks_us():
        return time.perf_counter_ns() // 1000
    def ticks_diff(a, b):
        return a - b
from tether import csr, keys
from tether import jwt as tjwt

what, n, d = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ec_der = open(d + "/ec.der", "rb").read()
claims = %(claims)r
subject = %(subject)r
ec = keys.load_private_key(ec_der)
if what.startswith("rs"):  # the heap figures must not count an RSA key they do not use
    rsa = keys.load_private_key(open(d + "/rsa.der", "rb").read())
kid = keys.fingerprint(ec.public_key_der())

def es256_signer():
    tjwt.encode(claims, ec, algorithm="ES256", headers={"kid": kid})

def es256_der():
    tjwt.encode(claims, ec_der, algorithm="ES256", headers={"kid": kid})

def rs256_signer():
    tjwt.encode(claims, rsa, algorithm="RS256")

def load_ec():
    keys.load_private_key(ec_der)

def keygen_csr():
    csr.make(keys.generate_p256(), subject)

def noop():  # the baseline of the heap figures: interpreter, imports, the EC key loaded
    pass

def once():  # for the heap figure: everything a provisioning device does, once
    key = keys.generate_p256()
    csr.make_pem(key, subject)
    tjwt.encode(claims, key, headers={"kid": keys.fingerprint(key.public_key_der())})

fn = globals()[what]
fn()  # warm-up
out = []
for i in range(n):
    gc.collect()
    t0 = ticks_us()
    fn()
    out.append(ticks_diff(ticks_us(), t0))
print("RESULT " + json.dumps(out))
"""

CASES = (
    ("ES256 JWT mint (loaded key)", "es256_signer", 1.0),
    ("ES256 JWT mint (key from DER)", "es256_der", 1.0),
    ("RS256-2048 JWT mint (CRT)", "rs256_signer", 0.2),
    ("load P-256 key (SEC1 DER)", "load_ec", 1.0),
    ("P-256 keygen + CSR", "keygen_csr", 1.0),
)


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def _keys(tmp):
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    ec_key = ec.generate_private_key(ec.SECP256R1())
    rsa_key = rsa.generate_private_key(65537, 2048)
    trad, none = ser.PrivateFormat.TraditionalOpenSSL, ser.NoEncryption()
    (tmp / "ec.der").write_bytes(ec_key.private_bytes(ser.Encoding.DER, trad, none))
    (tmp / "rsa.der").write_bytes(rsa_key.private_bytes(ser.Encoding.DER, trad, none))
    return ec_key, rsa_key


def _compile(tmp):
    out = tmp / "mpy"
    for rel in bundle.library_modules():
        bundle.compile_module(LIB / rel, out / (rel[:-3] + ".mpy"), "x64", rel)
    return out


def _run(cmd, env=None, timeout=300):
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return None


def _unix(script, mpy_dir, what, n, tmp, heap=None):
    from mpy import micropython_binary

    env = dict(os.environ, MICROPYPATH=".frozen:" + str(mpy_dir))
    cmd = [micropython_binary()] + (["-X", "heapsize=%dK" % heap] if heap else [])
    return _run(cmd + [str(script), what, str(n), str(tmp)], env)


def _cpython(script, what, n, tmp):
    env = dict(os.environ, PYTHONPATH=str(LIB))
    return _run([sys.executable, str(script), what, str(n), str(tmp)], env)


def _reference(ec_key, rsa_key, n):
    """PyJWT + cryptography doing the same jobs, in this process: {what: [us, ...]}."""
    import jwt as pyjwt
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    ec_der = ec_key.private_bytes(
        ser.Encoding.DER, ser.PrivateFormat.TraditionalOpenSSL, ser.NoEncryption()
    )
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, SUBJECT[0][1]),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, SUBJECT[1][1]),
        ]
    )

    def keygen_csr():
        k = ec.generate_private_key(ec.SECP256R1())
        x509.CertificateSigningRequestBuilder().subject_name(name).sign(k, hashes.SHA256())

    jobs = {
        "es256_signer": lambda: pyjwt.encode(
            CLAIMS, ec_key, algorithm="ES256", headers={"kid": "k"}
        ),
        "es256_der": lambda: pyjwt.encode(
            CLAIMS, ser.load_der_private_key(ec_der, None), algorithm="ES256"
        ),
        "rs256_signer": lambda: pyjwt.encode(CLAIMS, rsa_key, algorithm="RS256"),
        "load_ec": lambda: ser.load_der_private_key(ec_der, None),
        "keygen_csr": keygen_csr,
    }
    out = {}
    for what, fn in jobs.items():
        fn()
        xs = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            fn()
            xs.append((time.perf_counter_ns() - t0) // 1000)
        out[what] = xs
    return out


def _min_heap(script, mpy_dir, what, tmp, lo=8, hi=256):
    """Smallest -X heapsize (KB) in which `what` runs once; None if even hi fails."""
    from bench.heapsearch import smallest

    return smallest(
        lambda kb: _unix(script, mpy_dir, what, 1, tmp, heap=kb) is not None, lo - 1, hi
    )


IMPORT_SCRIPT = """
import gc, json
from tether import compat, errors, encoding
gc.collect()
b = gc.mem_alloc()
out = []
for name in ("der", "keys", "csr", "jwt", "p256", "rsa"):
    __import__("tether." + name)
    gc.collect()
    a = gc.mem_alloc()
    out.append((name, a - b))
    b = a
from tether import keys
k = keys.load_private_key(open(%(key)r, "rb").read())
k.sign(b"x")
gc.collect()
out.append(("first ES256 sign (p256 table)", gc.mem_alloc() - b))
print("RESULT " + json.dumps(out))
"""


def _import_heap(mpy_dir, tmp):
    """Heap each module adds when imported from .mpy (in this order), on the unix port."""
    from mpy import micropython_binary

    script = tmp / "imports.py"
    script.write_text(IMPORT_SCRIPT % {"key": str(tmp / "ec.der")})
    env = dict(os.environ, MICROPYPATH=".frozen:" + str(mpy_dir))
    return _run([micropython_binary(), str(script)], env) or []


def _sizes():
    out = {}
    with tempfile.TemporaryDirectory() as t:
        for arch in ARCHS:
            for m in MODULES:
                dst = Path(t) / arch / (m + ".mpy")
                bundle.compile_module(LIB / "tether" / (m + ".py"), dst, arch, "tether/%s.py" % m)
                out[(m, arch)] = dst.stat().st_size
    return out


def run(runs=20, quick=False):
    """Measure and print the table; returns rows (name, unix, cpython, reference, unit).

    unix: the MicroPython unix port running .mpy; cpython: tether on CPython; reference:
    PyJWT + cryptography on CPython (None where a row has no counterpart).
    """
    if quick:
        runs = 3
    rows = []
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        ec_key, rsa_key = _keys(tmp)
        script = tmp / "tokens_script.py"
        script.write_text(SCRIPT % {"claims": CLAIMS, "subject": SUBJECT})
        mpy_dir = _compile(tmp)
        ref = _reference(ec_key, rsa_key, runs)
        for label, what, scale in CASES:
            n = max(3, int(runs * scale))
            unix = _unix(script, mpy_dir, what, n, tmp)
            cpy = _cpython(script, what, n, tmp)
            med = [median(x) / 1000.0 if x else None for x in (unix, cpy, ref[what])]
            rows.append((label + " (median)", med[0], med[1], med[2], "ms"))
            # The minimum too: on a loaded machine it moves least between runs.
            low = [min(x) / 1000.0 if x else None for x in (unix, cpy, ref[what])]
            rows.append((label + " (min)", low[0], low[1], low[2], "ms"))
        if not quick:
            for label, what in (
                ("heap: baseline (imports, key loaded, no work)", "noop"),
                ("heap: ES256 JWT mint, key loaded", "es256_der"),
                ("heap: keygen + CSR + ES256 JWT", "once"),
            ):
                rows.append(
                    (
                        label + " (min -X heapsize, .mpy)",
                        _min_heap(script, mpy_dir, what, tmp),
                        None,
                        None,
                        "KB",
                    )
                )
        for name, b in _import_heap(mpy_dir, tmp):
            label = "heap: " + (name if " " in name else "import tether.%s" % name)
            rows.append((label + " (.mpy, 64-bit)", b, None, None, "B"))
    for (m, arch), size in sorted(_sizes().items()):
        rows.append(("size: tether/%s.mpy %s" % (m, arch), size, None, None, "B"))
    _print(rows)
    return rows


def _fmt(v):
    if v is None:
        return "-"
    return "%.2f" % v if isinstance(v, float) else str(v)


def _print(rows):
    line = "%-62s %10s %10s %13s  %s"
    print(line % ("row", "unix port", "CPython", "PyJWT/crypto", "unit"))
    for name, unix, cpy, ref, unit in rows:
        print(line % (name, _fmt(unix), _fmt(cpy), _fmt(ref), unit))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    run(args.runs, args.quick)


if __name__ == "__main__":
    main()
