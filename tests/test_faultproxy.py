"""tools/faultproxy.py against a real mosquitto: every fault does what it says."""

import socket
import subprocess
import sys
import time

import pytest
from brokers import mosquitto, mosquitto_broker  # noqa: F401  (fixture)
from mpy import ROOT

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.faultproxy import ProxyThread  # noqa: E402

pytestmark = pytest.mark.timeout(60)

# MQTT 3.1.1 CONNECT, client id "fp", clean session, keepalive 60 s.
CONNECT = bytes([0x10, 14, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 60, 0, 2]) + b"fp"
CONNACK_OK = bytes([0x20, 2, 0, 0])


def _connect(port, timeout=3):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.settimeout(timeout)
    return s


def _recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf


def _mqtt_handshake(port, timeout=3):
    s = _connect(port, timeout)
    s.sendall(CONNECT)
    got = _recv_exact(s, 4)
    return s, got


def _closed(s, timeout=3):
    """True if the peer closed or reset the connection within timeout."""
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


@pytest.fixture
def proxy(mosquitto_broker):  # noqa: F811
    with ProxyThread(*mosquitto_broker) as p:
        yield p


def test_forwards_an_mqtt_handshake(proxy):
    s, got = _mqtt_handshake(proxy.port)
    s.close()
    assert got == CONNACK_OK
    st = proxy.stats
    assert st["bytes_up"] == len(CONNECT) and st["bytes_down"] == 4


def test_delay_holds_each_chunk_both_ways(proxy):
    proxy.delay(300)
    t0 = time.monotonic()
    s, got = _mqtt_handshake(proxy.port)
    elapsed = time.monotonic() - t0
    s.close()
    assert got == CONNACK_OK
    assert elapsed >= 0.55, elapsed  # 300 ms up + 300 ms down
    proxy.delay(0)
    t0 = time.monotonic()
    s, got = _mqtt_handshake(proxy.port)
    s.close()
    assert got == CONNACK_OK and time.monotonic() - t0 < 0.5


def test_drop_aborts_open_connections_and_new_ones_still_work(proxy):
    s1, got = _mqtt_handshake(proxy.port)
    assert got == CONNACK_OK
    assert proxy.drop() == 1
    assert _closed(s1)
    s1.close()
    s2, got = _mqtt_handshake(proxy.port)
    s2.close()
    assert got == CONNACK_OK


def test_blackhole_accepts_and_swallows_without_replying(proxy):
    old, got = _mqtt_handshake(proxy.port)
    assert got == CONNACK_OK
    proxy.blackhole()
    new = _connect(proxy.port)  # accepted: no refusal, no reset
    new.sendall(CONNECT)
    old.sendall(bytes([0xC0, 0]))  # PINGREQ: no PINGRESP may come back
    assert not _closed(new, 1.0)
    assert not _closed(old, 0.2)
    proxy.resume()
    assert not _closed(old, 0.5)  # a swallowed stream stays swallowed
    assert proxy.stats["swallowed"] >= len(CONNECT) + 2
    s, got = _mqtt_handshake(proxy.port)  # new connections work again
    assert got == CONNACK_OK
    for x in (old, new, s):
        x.close()


def test_refuse_closes_the_listener_and_resume_reopens_the_same_port(proxy):
    port = proxy.port
    proxy.refuse()
    with pytest.raises(ConnectionRefusedError):
        _connect(port)
    proxy.resume()
    s, got = _mqtt_handshake(port)
    s.close()
    assert got == CONNACK_OK


def test_cut_after_tears_the_client_stream_mid_packet(proxy):
    proxy.cut_after(5)
    s = _connect(proxy.port)
    s.sendall(CONNECT)
    assert _closed(s)  # aborted, and no CONNACK came back
    s.close()
    assert proxy.stats["bytes_up"] == 5
    proxy.cut_after(None)
    s, got = _mqtt_handshake(proxy.port)
    s.close()
    assert got == CONNACK_OK


def test_upstream_down_closes_the_client_and_set_target_moves_it(tmp_path):
    with mosquitto(tmp_dir=tmp_path) as a:
        with ProxyThread(*a) as p:
            s, got = _mqtt_handshake(p.port)
            assert got == CONNACK_OK
            a.proc.terminate()
            a.proc.wait(5)
            assert _closed(s)  # the broker went away: so does the proxied stream
            s.close()
            s = _connect(p.port)
            assert _closed(s)  # upstream refused: the client is closed at once
            s.close()
            assert p.stats["upstream_failures"] >= 1
            with mosquitto(tmp_dir=tmp_path) as b:
                p.set_target(*b)
                s, got = _mqtt_handshake(p.port)
                s.close()
                assert got == CONNACK_OK


def test_standalone_tool_answers_its_control_socket(mosquitto_broker):  # noqa: F811
    host, port = mosquitto_broker
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.faultproxy", "--target", "%s:%d" % (host, port)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=str(ROOT),
    )
    try:
        line = proc.stdout.readline()  # "faultproxy 127.0.0.1:P -> ..., control 127.0.0.1:C"
        pport = int(line.split()[1].rsplit(":", 1)[1])
        cport = int(line.rsplit(":", 1)[1])
        ctl = _connect(cport)
        f = ctl.makefile("rw")

        def cmd(text):
            f.write(text + "\n")
            f.flush()
            return f.readline().strip()

        assert cmd("delay 10") == "ok delay 10"
        s, got = _mqtt_handshake(pport)
        assert got == CONNACK_OK
        assert cmd("drop") == "ok dropped 1"
        assert _closed(s)
        assert cmd("refuse") == "ok refuse"
        with pytest.raises(ConnectionRefusedError):
            _connect(pport)
        assert cmd("resume") == "ok resume"
        assert "accepted=1" in cmd("stats")
        assert cmd("bogus").startswith("error")
        ctl.close()
    finally:
        proc.terminate()
        proc.wait(5)
