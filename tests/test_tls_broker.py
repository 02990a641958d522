"""TLS against a real broker (Debian mosquitto), from the MicroPython unix port and CPython.

One mosquitto serves every case on its own loopback listener (TLS 1.2 only, like mbedTLS
on the unix port): mutual TLS, password over server-only TLS, and one listener per bad
server certificate (another CA, wrong host name, expired, not yet valid). Each listener is
reached through a recording TCP relay that splits the client's bytes into TLS records, so a
test can prove that a refused connection never sent an application-data record, i.e. not
one MQTT byte left the client.

The client is CLIENT_SCRIPT below, run as a subprocess on both interpreters: it builds the
context with tether.tlsctx, connects with tether.mqtt.MQTTClient, subscribes, publishes to
itself and prints one RESULT line of JSON.
"""

import json
import os
import socket
import statistics
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from brokers import mosquitto
from mpy import LIB, ROOT, micropython_cmd, micropython_env

sys.path.insert(0, str(ROOT))
from tools.pki import make_pki  # noqa: E402

pytestmark = pytest.mark.timeout(120)

INTERPRETERS = ("cpython", "unix")
PASSWORD = "tls-Pa55-9f3e1c7d"  # the known secret the log check looks for
USER = "device-user"
RUN_TIMEOUT_S = 60

CLIENT_SCRIPT = r"""
import sys, json, gc
import asyncio
from tether import log, tlsctx
from tether.compat import ticks_ms, ticks_diff, MICROPYTHON
from tether.mqtt import MQTTClient, MQTTConnectError

a = json.loads(open(sys.argv[1]).read())
log.basicConfig(level=log.DEBUG if a.get("debug") else log.WARNING)


def rd(p):
    if p is None:
        return None
    with open(p, "rb") as f:
        return f.read()


def heap():
    if not MICROPYTHON:
        return None
    gc.collect()
    return gc.mem_alloc()


res = {"ok": False, "stage": "credentials", "connect_ms": []}
got = []
heap0 = heap()
try:
    if a.get("via_creds"):  # the firmware's path: settings -> tether.creds -> tlsctx
        from tether import creds

        spec = {"key": a["key"], "cert": a["cert"], "ca": a["cas"]}
        ctx = creds.make_context(creds.load_credentials({"credentials": spec}))
    else:
        ctx = tlsctx.client_context(
            cadata=[rd(p) for p in a["cas"]] if a.get("cas") else None,
            cert=rd(a.get("cert")),
            key=rd(a.get("key")),
            insecure=a.get("insecure", False),
        )
    res["heap_context"] = heap()
    res["stage"] = "connect"

    async def main():
        for i in range(a.get("repeat", 1)):
            c = MQTTClient(
                a["client_id"], a["host"], a["port"], user=a.get("user"),
                password=a.get("password"), ssl=ctx, server_hostname=a["server_hostname"],
                connect_timeout_ms=10000,
                on_message=lambda topic, payload, retain, qos: got.append(payload),
            )
            if i == 0:
                res["heap_client"] = heap()
            t0 = ticks_ms()
            await c.connect()
            res["connect_ms"].append(ticks_diff(ticks_ms(), t0))
            if i == 0:
                res["heap_connected"] = heap()
                res["stage"] = "pubsub"
                await c.subscribe(a["topic"], qos=1)
                await c.publish(a["topic"], a["payload"].encode(), qos=1)
                for _ in range(200):
                    if got:
                        break
                    await asyncio.sleep_ms(10) if MICROPYTHON else await asyncio.sleep(0.01)
                res["stage"] = "connect"
            await c.disconnect()

    asyncio.run(main())
    res["ok"] = True
    res["stage"] = "done"
except Exception as exc:
    res["error"] = type(exc).__name__
    res["message"] = str(exc)
    handshake = res["stage"] == "connect" and not isinstance(exc, MQTTConnectError)
    res["cause"] = tlsctx.explain(exc, handshake)
res["received"] = [bytes(p).decode() for p in got]
res["heap_before"] = heap0
print("RESULT " + json.dumps(res))
"""


# --- a TCP relay that records the TLS record types the client sends -------------------

_APPLICATION_DATA = 23


class RecordingRelay:
    """Forwards 127.0.0.1:<port> to the broker; counts each connection's TLS records."""

    def __init__(self, upstream_port):
        self.upstream = ("127.0.0.1", upstream_port)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = []  # one dict per accepted connection: record type -> count
        self._finished = []  # one Event per connection: its client->broker pump has ended
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            counts = {}
            done = threading.Event()
            self.connections.append(counts)
            self._finished.append(done)
            try:
                u = socket.create_connection(self.upstream, timeout=5)
                u.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                c.close()
                done.set()
                continue
            for src, dst, rec, ev in ((c, u, counts, done), (u, c, None, None)):
                t = threading.Thread(target=self._pump, args=(src, dst, rec, ev), daemon=True)
                t.start()
                self._threads.append(t)

    def _pump(self, src, dst, counts, done):
        src.settimeout(0.2)
        pending = b""
        try:
            while not self._stop.is_set():
                try:
                    data = src.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    break
                if counts is not None:
                    pending += data
                    while len(pending) >= 5:  # type, version(2), length(2)
                        n = int.from_bytes(pending[3:5], "big")
                        if len(pending) < 5 + n:
                            break
                        counts[pending[0]] = counts.get(pending[0], 0) + 1
                        pending = pending[5 + n :]
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            if done is not None:
                done.set()

    def settled(self, first, timeout_s=10):
        """Connections first.. with every client byte counted (their pumps have ended)."""
        for ev in self._finished[first:]:
            assert ev.wait(timeout_s), "a relayed connection is still open"
        return self.connections[first:]

    def close(self):
        self._stop.set()
        for t in self._threads:
            t.join(2)
        self.sock.close()


# --- the broker ---------------------------------------------------------------------


def _free_ports(n):
    # All sockets stay bound until every port is picked: one at a time, the kernel may hand
    # the same free port out twice, and mosquitto then fails with "address already in use".
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


LISTENERS = {
    # name: (server certificate stem, options)
    "mtls": ("server", ["require_certificate true", "allow_anonymous true"]),
    "password": ("server", ["require_certificate false", "allow_anonymous false"]),
    "other_ca": ("server_other_ca", ["require_certificate true", "allow_anonymous true"]),
    "wrong_host": ("server_wrong_host", ["require_certificate true", "allow_anonymous true"]),
    "expired": ("server_expired", ["require_certificate true", "allow_anonymous true"]),
    "not_yet_valid": (
        "server_not_yet_valid",
        ["require_certificate true", "allow_anonymous true"],
    ),
    # TLS 1.3 only: what the unix port's mbedTLS cannot speak.
    "tls13": (
        "server",
        ["require_certificate true", "allow_anonymous true", "tls_version tlsv1.3"],
    ),
}


class Setup:
    def __init__(self, pki, broker, ports, relays):
        self.pki = pki
        self.broker = broker
        self.ports = ports
        self.relays = relays


@pytest.fixture(scope="module")
def tls_setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    os.chmod(d, 0o755)  # mosquitto may drop to its own user and must read the files
    pki = make_pki(str(d / "pki"))
    pwfile = d / "passwd"
    subprocess.run(
        ["mosquitto_passwd", "-c", "-b", str(pwfile), USER, PASSWORD],
        check=True,
        capture_output=True,
        timeout=30,
    )
    ports = dict(zip(LISTENERS, _free_ports(len(LISTENERS))))
    # brokers.mosquitto writes the first listener; the rest follow with their own options.
    # per_listener_settings: the password listener refuses anonymous clients, the others not.
    # set_tcp_nodelay: a broker that answers at once, so the figures measure the client.
    lines = ["per_listener_settings true", "set_tcp_nodelay true"]
    first = True
    for name, (stem, options) in LISTENERS.items():
        if not first:
            lines.append("listener %d 127.0.0.1" % ports[name])
        lines += [
            "cafile %s" % pki["ca_cert_pem"],
            "certfile %s" % pki[stem + "_cert_pem"],
            "keyfile %s" % pki[stem + "_key_pem"],
        ] + options
        if not any(o.startswith("tls_version") for o in options):
            lines.append("tls_version tlsv1.2")
        if name == "password":
            lines.append("password_file %s" % pwfile)
        first = False
    with mosquitto(extra_config=lines, tmp_dir=str(d)) as broker:
        ports["mtls"] = broker.port
        relays = {name: RecordingRelay(port) for name, port in ports.items()}
        try:
            yield Setup(pki, broker, ports, relays)
        finally:
            for r in relays.values():
                r.close()


# mbedTLS on the unix port speaks TLS 1.2 only. mosquitto's `tls_version tlsv1.2` is a
# minimum, so CPython would negotiate TLS 1.3, where a client certificate is judged only
# after the client's first application data (see docs/security.md). The refusal tests run
# CPython with this OpenSSL config so both interpreters meet the broker over TLS 1.2.
OPENSSL_TLS12_ONLY = """openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
MaxProtocol = TLSv1.2
"""


def run_client(interp, args, tmp_path, tls12_only=False):
    argfile = tmp_path / ("args-%s-%s.json" % (interp, args["client_id"]))
    argfile.write_text(json.dumps(args))
    script = tmp_path / "tls_client.py"
    script.write_text(CLIENT_SCRIPT)
    if interp == "unix":
        cmd = micropython_cmd(script, argfile)
        env = micropython_env()
    else:
        cmd = [sys.executable, str(script), str(argfile)]
        env = dict(os.environ, PYTHONPATH=str(LIB))
        if tls12_only:
            conf = tmp_path / "openssl-tls12.cnf"
            conf.write_text(OPENSSL_TLS12_ONLY)
            env["OPENSSL_CONF"] = str(conf)
    proc = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, errors="replace"
    )
    out = proc.stdout + proc.stderr
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:]), out
    raise AssertionError("no RESULT from the %s client:\n%s" % (interp, out))


def client_args(setup, listener, interp, case, **kw):
    pki = setup.pki
    args = {
        "host": "127.0.0.1",
        "port": setup.relays[listener].port,
        "server_hostname": "localhost",
        "client_id": "%s-%s" % (case, interp),
        "cas": [pki["ca_cert_der"]],
        "cert": pki["device_cert_der"],
        "key": pki["device_key_der"],
        "topic": "tether/tls/%s/%s" % (case, interp),
        "payload": "hello over %s from %s" % (case, interp),
    }
    args.update(kw)
    return args


def assert_round_trip(res, args, out):
    assert res["ok"], out
    assert res["received"] == [args["payload"]], out


# --- connecting -----------------------------------------------------------------------


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_mutual_tls_with_der_key_and_certificate(tls_setup, interp, tmp_path):
    args = client_args(tls_setup, "mtls", interp, "mtls")
    relay = tls_setup.relays["mtls"]
    before = len(relay.connections)
    res, out = run_client(interp, args, tmp_path)
    assert_round_trip(res, args, out)
    # The positive control of the relay's count: a working session sends application data.
    new = relay.settled(before)
    assert new and all(c.get(_APPLICATION_DATA, 0) > 0 for c in new), new


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_server_verified_by_ip_address_san(tls_setup, interp, tmp_path):
    args = client_args(tls_setup, "mtls", interp, "ipsan", server_hostname="127.0.0.1")
    res, out = run_client(interp, args, tmp_path)
    assert_round_trip(res, args, out)


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_one_of_several_trusted_cas_signs_the_server(tls_setup, interp, tmp_path):
    pki = tls_setup.pki
    cas = [pki["other_ca_cert_der"], pki["ca_cert_der"]]
    args = client_args(tls_setup, "mtls", interp, "twocas", cas=cas)
    res, out = run_client(interp, args, tmp_path)
    assert_round_trip(res, args, out)


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_pkcs8_der_key_works(tls_setup, interp, tmp_path):
    args = client_args(tls_setup, "mtls", interp, "pkcs8", key=tls_setup.pki["device_key_pk8_der"])
    res, out = run_client(interp, args, tmp_path)
    assert_round_trip(res, args, out)


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_firmware_credentials_from_settings(tls_setup, interp, tmp_path):
    args = client_args(tls_setup, "mtls", interp, "creds", via_creds=True)
    res, out = run_client(interp, args, tmp_path)
    assert_round_trip(res, args, out)


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_firmware_credentials_take_pem_files_on_both_interpreters(tls_setup, interp, tmp_path):
    # tether.creds decodes PEM armour itself: the same PEM settings work on a board
    pki = tls_setup.pki
    args = client_args(
        tls_setup, "mtls", interp, "credspem", via_creds=True,
        key=pki["device_key_pem"], cert=pki["device_cert_pem"], cas=[pki["ca_cert_pem"]],
    )  # fmt: skip
    res, out = run_client(interp, args, tmp_path)
    assert_round_trip(res, args, out)


def _encrypted_key(tls_setup, tmp_path):
    from cryptography.hazmat.primitives import serialization

    with open(tls_setup.pki["device_key_pem"], "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    path = tmp_path / "device-enc.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pass-Phrase-1"),
        )
    )
    return str(path)


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_encrypted_pem_key_is_refused_before_connecting(tls_setup, interp, tmp_path):
    key = _encrypted_key(tls_setup, tmp_path)
    args = client_args(tls_setup, "mtls", interp, "credsenc", via_creds=True, key=key)
    relay = tls_setup.relays["mtls"]
    before = len(relay.connections)
    res, out = run_client(interp, args, tmp_path)
    assert not res["ok"] and res["error"] == "CredentialError", out
    want = "openssl pkey -in %s -out %s-plain.pem" % (key, key[:-4])
    assert "encrypted" in res["message"] and want in res["message"], out
    assert "pass-Phrase-1" not in out
    relay.settled(before)
    assert len(relay.connections) == before  # no TCP connection at all


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_password_over_server_only_tls(tls_setup, interp, tmp_path):
    args = client_args(
        tls_setup, "password", interp, "pw", cert=None, key=None, user=USER, password=PASSWORD
    )
    res, out = run_client(interp, args, tmp_path)
    assert_round_trip(res, args, out)


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_wrong_password_is_refused_by_the_broker(tls_setup, interp, tmp_path):
    args = client_args(
        tls_setup, "password", interp, "badpw", cert=None, key=None, user=USER, password="nope"
    )
    res, out = run_client(interp, args, tmp_path)
    assert not res["ok"] and res["error"] == "MQTTConnectError", out
    assert "not authori" in res["message"] or "bad user name" in res["message"], out


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_password_never_appears_in_debug_output(tls_setup, interp, tmp_path):
    args = client_args(
        tls_setup,
        "password",
        interp,
        "secret",
        cert=None,
        key=None,
        user=USER,
        password=PASSWORD,
        debug=True,
    )
    res, out = run_client(interp, args, tmp_path)
    assert_round_trip(res, args, out)
    assert "DEBUG:" in out or "INFO:" in out, "the client logged nothing at DEBUG:\n" + out
    assert PASSWORD not in out
    # ... and neither does any part of the device key.
    key = Path(tls_setup.pki["device_key_pem"]).read_text().splitlines()[1]
    args = client_args(tls_setup, "mtls", interp, "keylog", debug=True)
    res, out = run_client(interp, args, tmp_path)
    assert res["ok"], out
    assert key[:24] not in out


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_insecure_connects_to_any_server_and_warns(tls_setup, interp, tmp_path):
    args = client_args(tls_setup, "other_ca", interp, "insecure", cas=None, insecure=True)
    res, out = run_client(interp, args, tmp_path)
    assert_round_trip(res, args, out)
    assert out.count("WARNING:tls:TLS server verification is OFF") == 1, out


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_tls13_only_broker_works_on_cpython_and_is_refused_by_the_unix_port(
    tls_setup, interp, tmp_path
):
    args = client_args(tls_setup, "tls13", interp, "tls13")
    res, out = run_client(interp, args, tmp_path)
    if interp == "cpython":
        assert_round_trip(res, args, out)
    else:  # mbedTLS here speaks TLS 1.2 only, and the cause says so
        assert not res["ok"] and res["stage"] == "connect", out
        assert "TLS 1.2 only" in res["cause"], out


# --- refusals -------------------------------------------------------------------------

# case: (listener, overrides, the text the cause must contain)
SERVER_REFUSALS = {
    "server_signed_by_another_ca": ("other_ca", {}, "not signed by a trusted CA"),
    "wrong_host_name": ("wrong_host", {}, "another host name"),
    "expired_server_certificate": ("expired", {}, "has expired"),
    "not_yet_valid_server_certificate": ("not_yet_valid", {}, "not yet valid"),
    "no_client_certificate": ("mtls", {"cert": None, "key": None}, "client certificate"),
    "client_certificate_from_unknown_ca": (
        "mtls",
        {"cert": "client_unknown_ca_cert_der", "key": "client_unknown_ca_key_der"},
        "client certificate",
    ),
}

# What the broker's log says for the refusals only the broker can see.
BROKER_LOG = {
    "no_client_certificate": "peer did not return a certificate",
    "client_certificate_from_unknown_ca": "certificate verify failed",
}


@pytest.mark.parametrize("interp", INTERPRETERS)
@pytest.mark.parametrize("case", sorted(SERVER_REFUSALS))
def test_handshake_refused_before_any_mqtt_byte(tls_setup, interp, case, tmp_path):
    listener, overrides, cause = SERVER_REFUSALS[case]
    pki = tls_setup.pki
    kw = {k: (pki[v] if v else None) for k, v in overrides.items()}
    args = client_args(tls_setup, listener, interp, case, **kw)
    relay = tls_setup.relays[listener]
    before = len(relay.connections)
    log_before = tls_setup.broker.log()
    res, out = run_client(interp, args, tmp_path, tls12_only=True)
    assert not res["ok"], out
    assert res["stage"] == "connect", out
    assert res["cause"] and cause in res["cause"], out
    print("%s[%s]: %s / %s" % (case, interp, res["message"], res["cause"]))
    # The relay saw the connection, and not one application-data record from the client.
    new = relay.settled(before)
    assert new and new[0].get(22), "no TLS handshake went through the relay: %r" % new
    assert all(c.get(_APPLICATION_DATA, 0) == 0 for c in new), new
    # The broker never parsed a CONNECT from this client id.
    log = tls_setup.broker.log()[len(log_before) :]
    assert args["client_id"] not in log, log
    if case in BROKER_LOG:
        assert BROKER_LOG[case] in log, log


# Credentials refused while building the context: no connection is even attempted.
CREDENTIAL_REFUSALS = {
    "corrupt_key": ("device_key_corrupt_der", "key is corrupt"),
    "key_not_matching_the_certificate": ("device_key_mismatch_der", "does not match"),
}


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_pem_key_under_a_der_name_works_on_both_interpreters(tls_setup, interp, tmp_path):
    # tlsctx decodes the armour of PEM bytes on MicroPython too (no openssl on the host)
    args = client_args(
        tls_setup, "mtls", interp, "pemder", key=tls_setup.pki["device_key_pem_as_der"]
    )
    res, out = run_client(interp, args, tmp_path)
    assert_round_trip(res, args, out)


@pytest.mark.parametrize("interp", INTERPRETERS)
@pytest.mark.parametrize("case", sorted(CREDENTIAL_REFUSALS))
def test_bad_key_refused_before_connecting(tls_setup, interp, case, tmp_path):
    key, text = CREDENTIAL_REFUSALS[case]
    args = client_args(tls_setup, "mtls", interp, case, key=tls_setup.pki[key])
    relay = tls_setup.relays["mtls"]
    before = len(relay.connections)
    res, out = run_client(interp, args, tmp_path)
    relay.settled(before)
    assert not res["ok"] and res["stage"] == "credentials", out
    assert res["error"] == "CredentialError" and text in res["message"], out
    assert len(relay.connections) == before  # no TCP connection at all


# --- figures --------------------------------------------------------------------------


def test_handshake_time_and_heap_figures(tls_setup, tmp_path, capsys):
    """Median TLS+CONNECT time of 5 connects per interpreter; unix-port heap when connected.

    The unix port speaks TLS 1.2 only; CPython is measured on TLS 1.2 and on 1.3.

    Printed for the report (pytest -s); asserted only loosely so a slow CI cannot fail it.
    """
    figures = {}
    runs = (("unix", "unix", False), ("cpython", "cpython_tls12", True))
    runs += (("cpython", "cpython_tls13", False),)
    for interp, name, tls12 in runs:
        args = client_args(tls_setup, "mtls", interp, "bench", repeat=5)
        args["port"] = tls_setup.ports["mtls"]  # straight to the broker, not via the relay
        res, out = run_client(interp, args, tmp_path, tls12_only=tls12)
        assert res["ok"] and len(res["connect_ms"]) == 5, out
        figures[name + "_connect_ms"] = statistics.median(res["connect_ms"])
        if interp == "unix":
            figures["unix_heap_in_use_connected"] = res["heap_connected"]
            figures["unix_heap_context"] = res["heap_context"] - res["heap_before"]
            figures["unix_heap_tls_connection"] = res["heap_connected"] - res["heap_client"]
    with capsys.disabled():
        print("\nTLS figures (mutual TLS, EC P-256, local mosquitto): %r" % figures)
    assert 0 < figures["unix_heap_tls_connection"] < 200_000
