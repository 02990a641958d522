"""tether.akenza against the akenza emulator plug-in over TLS (tools/cloudsim/plugins/akenza),
on CPython (in-process) and on the MicroPython unix port (a script in a subprocess).

The emulator verifies every JWT with PyJWT/`cryptography`, independently of tether.jwt:
both algorithms, the kid matching the registered key, renewal across three 5 s token
lifetimes with the emulator dropping a session whose token expired (nothing lost or sent
twice), refusals naming the claim, malformed downlinks, sync mode, seed 001's create_jwt on
tether.jwt, and examples/akenza_uplink.py on both interpreters.
"""

import asyncio
import json
import subprocess
import sys
import time

import paho.mqtt.publish as publish
import pytest
from cloudsim_fixtures import cloudsim_factory  # noqa: F401
from mpy import LIB, ROOT, micropython_cmd, micropython_env
from tether.akenza import AkenzaClient

from tools import akenza_keys

pytestmark = pytest.mark.timeout(120)

DEVICE_SCRIPT = r"""
import asyncio, json, sys
from tether.akenza import AkenzaClient

with open(sys.argv[1]) as f:  # a file: the unix port dies on an argument of 256+ chars
    cfg = json.load(f)
got = []


def on_downlink(client, sub, payload):
    got.append(sub)
    print("DOWN", json.dumps([sub, payload if not isinstance(payload, bytes) else "bytes"]))


async def main():
    c = AkenzaClient(cfg["id"], key=cfg["key"], host="127.0.0.1", port=cfg["port"],
                     ca=cfg["ca"], server_hostname="localhost", on_downlink=on_downlink,
                     token_lifetime=cfg.get("life", 1200), audience=cfg.get("aud"))
    task = asyncio.create_task(c.run())
    mode = cfg["mode"]
    if mode == "refused":
        while c.session.failures < 1:
            await asyncio.sleep(0.05)
        print("ERROR", str(c.session.last_error))
    elif mode == "renew":
        n = 0
        t0 = time.ticks_ms()
        while time.ticks_diff(time.ticks_ms(), t0) < cfg["run_ms"]:
            await c.publish({"n": n})
            n += 1
            await asyncio.sleep(0.1)
        ok = await c.flush(10000)
        s = c.session
        for _ in range(100):  # a busy machine may finish the third renewal a bit later
            if s.renewals >= 3:
                break
            await asyncio.sleep(0.05)
        print("RENEW", json.dumps([n, ok, s.renewals, s.failures, s.connection_lost]))
        print("MODS", json.dumps(sorted(k for k in sys.modules if k.startswith("tether"))))
    else:
        await c.publish({"temperature": 22})
        await c.publish({"door": "open"}, topic="alerts")
        print("FLUSHED", await c.flush(10000), c.credentials.kid)
        while "last" not in got:
            await asyncio.sleep(0.02)
        print("CONNECTED", c.connected, c.session.connects, c.counters["callback_errors"])
    c.stop()
    await task


import time
asyncio.run(main())
"""


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    base = tmp_path_factory.mktemp("akenza-client-keys")
    return {
        "ES256": akenza_keys.make_keys(str(base / "ec"), "dev-ec", "ES256"),
        "RS256": akenza_keys.make_keys(str(base / "rsa"), "dev-rsa", "RS256", cert=True),
        "other": akenza_keys.make_keys(str(base / "other"), "dev-x", "ES256"),
    }


@pytest.fixture
def sim(cloudsim_factory):  # noqa: F811
    return cloudsim_factory(clouds=["akenza"])


def _register(sim, device_id, keyset):
    pem = open(keyset.get("cert_pem") or keyset["public_pem"]).read()
    return sim.clouds["akenza"].add_device(device_id, pem)


def _client(sim, device_id, key, **kw):
    return AkenzaClient(
        device_id,
        key=key,
        host="127.0.0.1",
        port=sim.ports["akenza"],
        ca=str(sim.ca.cert_pem_path),
        server_hostname="localhost",
        **kw,
    )


def _run(coro, timeout=60, client=None):
    async def bounded():
        try:
            return await asyncio.wait_for(coro, timeout)
        finally:
            if client is not None:  # a failed assertion must not leave it running
                client.stop()
                await asyncio.sleep(0.05)

    return asyncio.run(bounded())


async def _until(pred, timeout=10):
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout:
            return False
        await asyncio.sleep(0.02)
    return True


def _unix(sim, cfg, tmp_path, timeout=60):
    script = tmp_path / "akenza_device.py"
    script.write_text(DEVICE_SCRIPT)
    cfg = dict(cfg, port=sim.ports["akenza"], ca=str(sim.ca.cert_der_path))
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    return subprocess.Popen(
        micropython_cmd(script, tmp_path / "cfg.json"),
        cwd=str(tmp_path),
        env=micropython_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _lines(proc, prefix, timeout=30):
    """Read the unix port's output until a line starting with prefix; return it."""
    out = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        line = proc.stdout.readline()
        if not line:
            break
        out.append(line)
        if line.startswith(prefix):
            return line[len(prefix) :].strip()
    proc.kill()
    raise AssertionError("no %s line:\n%s" % (prefix, "".join(out)))


def _finish(proc):
    try:
        proc.wait(20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


# -- both algorithms, kid, uplinks and downlinks --------------------------------------------


@pytest.mark.parametrize("alg,fmt", [("ES256", "private_der"), ("RS256", "private_pem")])
def test_cpython_both_algorithms_uplinks_and_downlinks(sim, keys, alg, fmt):
    akenza = sim.clouds["akenza"]
    dev_id = "dev-" + alg.lower()
    dev = _register(sim, dev_id, keys[alg])
    got = []
    client = _client(sim, dev_id, keys[alg][fmt], on_downlink=lambda c, s, p: got.append((s, p)))
    assert client.credentials.algorithm == alg
    assert client.credentials.kid == keys[alg]["kid"] == dev.keys[0].kid

    async def main():
        task = asyncio.create_task(client.run())
        await client.publish({"temperature": 22})
        await client.publish({"door": "open"}, topic="alerts/front")
        assert await client.flush(10000), client.stats()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, akenza.send_downlink, dev_id, "commands", {"led": True})
        await loop.run_in_executor(None, akenza.send_downlink, dev_id, "", b"\x00raw")
        assert await _until(lambda: len(got) == 2)
        client.stop()
        await task

    _run(main(), client=client)
    ups = akenza.uplinks(dev_id)
    assert [(u["topic"], u["data"]) for u in ups] == [
        ("", {"temperature": 22}),
        ("alerts/front", {"door": "open"}),
    ]
    assert got == [("commands", {"led": True}), ("", b"\x00raw")]
    claims = akenza.last_claims(dev_id)
    assert claims["aud"] == "https://akenza.io/devices/" + dev_id
    assert claims["exp"] - claims["iat"] == 1200
    assert sim.events(dev_id, "token")[0]["text"].startswith("jwt " + alg)


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_unix_port_both_algorithms_uplinks_and_a_malformed_downlink_corpus(
    sim, keys, alg, tmp_path
):
    akenza = sim.clouds["akenza"]
    dev_id = "dev-" + alg.lower()
    _register(sim, dev_id, keys[alg])
    proc = _unix(sim, {"id": dev_id, "key": keys[alg]["private_der"], "mode": "up"}, tmp_path)
    try:
        flushed = _lines(proc, "FLUSHED").split()
        assert flushed == ["True", keys[alg]["kid"]]
        for sub, payload in (
            ("a", b""),
            ("b", b"{"),
            ("c", b"\xff\xfe"),
            ("d", b"[" * 3000),
            ("e", b"x" * 5000),  # larger than the client's MAX_PACKET: dropped, counted
        ):
            akenza.send_downlink(dev_id, sub, payload)
        akenza.send_downlink(dev_id, "last", {"ok": 1})
        done = _lines(proc, "CONNECTED").split()
        assert done == ["True", "1", "0"]  # still the first connection
    finally:
        _finish(proc)
    ups = akenza.uplinks(dev_id)
    assert [(u["topic"], u["data"]) for u in ups] == [
        ("", {"temperature": 22}),
        ("alerts", {"door": "open"}),
    ]
    assert sim.events(dev_id, "token")[0]["text"].startswith("jwt " + alg)


# -- renewal across three 5 s token lifetimes ------------------------------------------------


def _check_renewals(sim, dev_id, n):
    ups = sim.clouds["akenza"].uplinks(dev_id)
    assert [u["data"]["n"] for u in ups] == list(range(n))  # none lost, none twice
    assert len(sim.events(dev_id, "token")) == 4  # the first token and three renewals
    assert sim.events(dev_id, "expired") == []  # always renewed before the emulator cut it


def test_cpython_renewal_across_three_5_s_tokens(sim, keys):
    sim.set_knobs(akenza_disconnect_at_exp=True)
    _register(sim, "dev-ec", keys["ES256"])
    client = _client(sim, "dev-ec", keys["ES256"]["private_der"], token_lifetime=5)
    made = [0]

    async def main():
        task = asyncio.create_task(client.run())
        t0 = time.monotonic()
        while time.monotonic() - t0 < 13.5:  # renewals at about 4, 8 and 12 s
            await client.publish({"n": made[0]})
            made[0] += 1
            await asyncio.sleep(0.1)
        assert await client.flush(10000)
        s = client.session
        await _until(lambda: s.renewals >= 3, 5)  # a busy machine may finish it later
        seen.append((s.renewals, s.failures, s.connection_lost))
        client.stop()
        await task

    seen = []
    _run(main(), client=client)
    assert seen == [(3, 0, 0)], client.stats()
    _check_renewals(sim, "dev-ec", made[0])


def test_unix_port_renewal_across_three_5_s_tokens(sim, keys, tmp_path):
    sim.set_knobs(akenza_disconnect_at_exp=True)
    _register(sim, "dev-ec", keys["ES256"])
    cfg = {"id": "dev-ec", "key": keys["ES256"]["private_der"], "mode": "renew", "life": 5,
           "run_ms": 13500}  # fmt: skip
    proc = _unix(sim, cfg, tmp_path)
    try:
        n, ok, renewals, failures, lost = json.loads(_lines(proc, "RENEW", 40))
        mods = json.loads(_lines(proc, "MODS", 10))
    finally:
        _finish(proc)
    assert ok and (renewals, failures, lost) == (3, 0, 0), (n, ok, renewals, failures, lost)
    _check_renewals(sim, "dev-ec", n)
    # A board keeps what signing needs, not what loading the key or minting took: those
    # modules went again after the client was made and after each of the 4 tokens.
    gone = ["tether.akenza.keyload", "tether.der", "tether.encoding", "tether.hmac",
            "tether.jwt", "tether.keys", "tether.p256", "tether.tlsctx"]  # fmt: skip
    assert [m for m in gone if m in mods] == [], mods
    assert "tether.p256_table" in mods  # kept: one 4 KB piece, found early (client.py)


# -- refusals name the claim -------------------------------------------------------------------


def _refused(client):
    async def main():
        task = asyncio.create_task(client.run())
        assert await _until(lambda: client.session.failures >= 1)
        client.stop()
        await task

    _run(main(), client=client)
    return str(client.session.last_error)


def test_refused_tokens_name_the_claim(sim, keys):
    _register(sim, "dev-ec", keys["ES256"])
    # aud: a private cloud's audience on the public broker
    aud = "https://acme.akenza.io/devices/dev-ec"
    msg = _refused(_client(sim, "dev-ec", keys["ES256"]["private_der"], audience=aud))
    assert "CONNACK 5" in msg and "aud %r" % aud in msg, msg
    assert sim.wait_event("dev-ec", "refused")["text"].startswith("JWT refused: aud: ")
    # kid: a key that is not the registered one
    after = sim.last_seq()
    other = _client(sim, "dev-ec", keys["other"]["private_der"])
    msg = _refused(other)
    assert "kid " + keys["other"]["kid"] in msg and "registered" in msg, msg
    assert sim.wait_event("dev-ec", "refused", after=after)["text"].startswith("JWT refused: kid")
    # iat: a clock two hours fast
    from tether.hal import clock
    from tether.hal.fakes import FakeClock

    clock.set_clock(FakeClock(1970, int(time.time()) + 7200))
    try:
        after = sim.last_seq()
        msg = _refused(_client(sim, "dev-ec", keys["ES256"]["private_der"]))
    finally:
        clock.set_clock(None)
    assert "iat %d" % (int(time.time()) + 7200) in msg or "iat " in msg, msg
    assert "clock" in msg
    assert sim.wait_event("dev-ec", "refused", after=after)["text"].startswith("JWT refused: iat")


def test_unix_port_refused_token_names_the_claim(sim, keys, tmp_path):
    _register(sim, "dev-ec", keys["ES256"])
    aud = "https://acme.akenza.io/devices/dev-ec"
    cfg = {"id": "dev-ec", "key": keys["ES256"]["private_der"], "mode": "refused", "aud": aud}
    proc = _unix(sim, cfg, tmp_path)
    try:
        msg = _lines(proc, "ERROR")
    finally:
        _finish(proc)
    assert "CONNACK 5" in msg and "aud %r" % aud in msg, msg
    assert sim.wait_event("dev-ec", "refused")["text"].startswith("JWT refused: aud: ")


# -- sync mode, seed 001, the example ------------------------------------------------------------


def test_cpython_sync_mode(sim, keys):
    _register(sim, "dev-ec", keys["ES256"])
    client = _client(sim, "dev-ec", keys["ES256"]["private_der"], sync_mode=True)
    client.start()  # returns once connected
    try:
        for i in range(3):
            client.send({"i": i})
        t0 = time.monotonic()
        while client.pending and time.monotonic() - t0 < 10:
            client.update()
    finally:
        client.stop()
    # stop() ran the loop until the session and the client's tasks ended: nothing is left
    # pending to be destroyed with the loop
    assert [t for t in asyncio.all_tasks(client._loop) if not t.done()] == []
    assert client.session.state == "stopped"
    sim.clouds["akenza"].wait_uplink("dev-ec", count=3)  # PUBACK may come before it is stored
    assert [u["data"] for u in sim.clouds["akenza"].uplinks("dev-ec")] == [
        {"i": i} for i in range(3)
    ]


def test_seed_001_create_jwt_on_tether_jwt_is_accepted(sim, keys):
    # Seed 001's create_jwt as tests/test_jwt_differential.py runs it (`import tether.jwt as
    # jwt`), key files read as the seed reads them; its token through the seed's paho call.
    from test_jwt_differential import create_jwt

    for alg, dev_id in (("ES256", "dev-ec"), ("RS256", "dev-rsa")):
        ks = keys[alg]
        _register(sim, dev_id, ks)
        password = create_jwt(dev_id, ks["private_pem"], ks["public_pem"], algorithm=alg)
        publish.single(
            "/up/device/id/" + dev_id,
            '{"temperature":22}',
            qos=1,
            hostname="127.0.0.1",
            port=sim.ports["akenza"],
            tls={"ca_certs": str(sim.ca.cert_pem_path)},
            auth={"username": "unused", "password": password},
            client_id=dev_id,
        )
        up = sim.clouds["akenza"].wait_uplink(dev_id, timeout=10)
        assert up["data"] == {"temperature": 22}
        assert sim.events(dev_id, "token")[0]["text"].startswith("jwt " + alg)


@pytest.mark.parametrize("interp", ["cpython", "unix"])
def test_example_akenza_uplink(sim, keys, interp, tmp_path):
    _register(sim, "dev-ec", keys["ES256"])
    example = ROOT / "examples" / "akenza_uplink.py"
    key = keys["ES256"]["private_pem" if interp == "cpython" else "private_der"]
    args = ["dev-ec", key, "127.0.0.1", sim.ports["akenza"]]
    if interp == "cpython":
        cmd = [sys.executable, str(example)] + [str(a) for a in args]
        cmd += [str(sim.ca.cert_pem_path), "localhost"]
        env = {"PYTHONPATH": str(LIB), "PATH": "/usr/bin:/bin"}
    else:
        cmd = micropython_cmd(example, *args, sim.ca.cert_der_path, "localhost")
        env = micropython_env()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "uplink delivered" in out.stdout
    up = sim.clouds["akenza"].wait_uplink("dev-ec", timeout=5)
    assert up["data"] == {"temperature": 22}


def test_firmware_on_the_unix_port_with_akenza_settings(sim, keys, tmp_path):
    # `"cloud": "akenza"`, the key in the board's flash (a DER file), the store on (the
    # firmware's default), an app publishing from loop(), diagnostics on a sub-topic through
    # the base's raw publish(topic, payload, qos).
    import shutil

    _register(sim, "dev-ec", keys["ES256"])
    dev = tmp_path / "board"
    dev.mkdir()
    shutil.copy(keys["ES256"]["private_der"], dev / "ec_private.der")
    shutil.copy(sim.ca.cert_der_path, dev / "ca.der")
    (dev / "app.py").write_text(
        "import asyncio\n"
        "async def loop(client):\n"
        "    for i in range(3):\n"
        "        await client.publish({'i': i})\n"
        "        await asyncio.sleep(0.1)\n"
    )
    settings = {
        "cloud": "akenza",
        "device_id": "dev-ec",
        "wifi": {"driver": "none"},
        "watchdog_ms": 0,
        "credentials": {"key": "ec_private.der", "ca": "ca.der"},
        "server": "127.0.0.1",
        "port": sim.ports["akenza"],
        "server_hostname": "localhost",
        "diagnostics": {"interval_s": 1, "topic": "/up/device/id/{device_id}/diag"},
    }
    (dev / "settings.json").write_text(json.dumps(settings))
    env = micropython_env()
    env["TETHER_RUN_S"] = "3"
    out = subprocess.run(
        micropython_cmd(ROOT / "firmware" / "main.py", dev / "settings.json"),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "tether: connected" in out.stdout
    akenza = sim.clouds["akenza"]
    akenza.wait_uplink("dev-ec", pred=lambda u: u["topic"] == "diag")
    ups = akenza.uplinks("dev-ec")
    assert [u["data"] for u in ups if u["topic"] == ""] == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert (dev / "store").exists()  # the uplinks went through the flash queue


def test_cpython_key_in_an_se05x_kid_from_its_certificate(sim, tmp_path):
    # The key inside a (fake) SE05x: the chip signs the digest (DER, made raw R||S by
    # tether.signer), the kid comes from the certificate object; the emulator verifies.
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization as ser
    from tether.hal import se05x
    from tether.hal.fake_se05x import FakeSE05x, LocalSigner

    ec = akenza_keys.make_keys(str(tmp_path / "se"), "dev-se", "ES256", cert=True)
    cert_der = x509.load_pem_x509_certificate(open(ec["cert_pem"], "rb").read()).public_bytes(
        ser.Encoding.DER
    )
    key_der = ser.load_der_private_key(open(ec["private_der"], "rb").read(), None).private_bytes(
        ser.Encoding.DER, ser.PrivateFormat.PKCS8, ser.NoEncryption()
    )
    se = se05x.SecureElement(FakeSE05x({0x65: cert_der}, {0x64: LocalSigner(key_der)}))
    _register(sim, "dev-se", ec)
    client = _client(sim, "dev-se", "se05x:token=0x00000064", cert="se05x:token=0x00000065",
                     se=se)  # fmt: skip
    assert client.credentials.kid == ec["kid"]

    async def main():
        task = asyncio.create_task(client.run())
        await client.publish({"se": 1})
        assert await client.flush(10000), client.stats()
        client.stop()
        await task

    _run(main(), client=client)
    assert sim.clouds["akenza"].wait_uplink("dev-se")["data"] == {"se": 1}
    assert sim.events("dev-se", "token")[0]["text"].startswith("jwt ES256")
