"""The emulator's plug-in interface, proven by a second cloud that lives only in tests
(tests/cloudsim_echo.py).

"echo" is the smallest cloud worth having: password auth (username = device id), JSON up on
echo/{id}/up, the same JSON back on echo/{id}/down, an RPC on a "$" topic (as Azure's
$iothub/...), and an HTTPS route that injects a downlink. A Tether MQTTClient (CPython)
talks to it beside the Arduino plug-in, in the same emulator: authentication refusals,
ACLs, the common knobs and the dashboard all come from the front, not from the plug-in.
"""

import asyncio
import datetime
import hashlib
import json
import ssl
import urllib.error
import urllib.request

import pytest
from cloudsim_echo import EchoCloud
from cloudsim_fixtures import cloudsim_factory  # noqa: F401
from tether.mqtt import MQTTClient, MQTTConnectError, MQTTError

from tools.cloudsim.core.topics import covers, matches

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def sim(cloudsim_factory):  # noqa: F811
    return cloudsim_factory(clouds=["arduino", EchoCloud()])


def client_ssl(sim):
    return ssl.create_default_context(cafile=str(sim.ca.cert_pem_path))


class Device_:
    """A Tether MQTTClient on the echo listener, collecting what it receives."""

    def __init__(self, sim, user, password, client_id=None, clean_session=True):
        self.got = asyncio.Queue()
        self.mqtt = MQTTClient(
            user if client_id is None else client_id,
            "127.0.0.1",
            sim.ports["echo"],
            user=user,
            password=password,
            ssl=client_ssl(sim),
            server_hostname="localhost",
            keepalive=10,
            clean_session=clean_session,
            on_message=lambda t, p, r, q: self.got.put_nowait((t, json.loads(bytes(p)))),
        )

    async def next(self, timeout=5):
        return await asyncio.wait_for(self.got.get(), timeout)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_json_round_trip_through_the_front(sim):
    sim.clouds["echo"].add("e-1", "pw1")

    async def main():
        dev = Device_(sim, "e-1", "pw1")
        await dev.mqtt.connect()
        assert await dev.mqtt.subscribe("echo/e-1/down", qos=1) == 1
        await dev.mqtt.publish("echo/e-1/up", b'{"t": 21.5}', qos=1)
        assert await dev.next() == ("echo/e-1/down", {"echo": {"t": 21.5}})
        sim.clouds["echo"].inject("e-1", {"led": True})  # a test method of the plug-in
        # the injection is a blocking call into the loop: give the reader its turn
        assert await dev.next() == ("echo/e-1/down", {"led": True})
        await dev.mqtt.disconnect()

    run(main())
    assert sim.clouds["echo"].uplinks == [("e-1", {"t": 21.5})]
    assert sim.device("e-1", "echo").connects == 1
    assert sim.events("e-1", "connected", cloud="echo")[0]["text"].startswith("password auth")


def test_bad_password_gets_connack_5_with_the_reason_logged(sim):
    sim.clouds["echo"].add("e-1", "pw1")

    async def main():
        dev = Device_(sim, "e-1", "guess")
        with pytest.raises(MQTTConnectError) as err:
            await dev.mqtt.connect()
        return err.value.code

    assert run(main()) == 5
    refused = sim.wait_event("e-1", "refused")
    assert refused["cloud"] == "echo" and refused["text"] == "wrong password for e-1"
    assert "guess" not in json.dumps(sim.events())  # never a password in the log
    assert not sim.device("e-1", "echo").connected


def test_acl_confines_a_device_to_its_own_topics(sim):
    echo = sim.clouds["echo"]
    echo.add("e-1", "pw1")
    echo.add("e-2", "pw2")

    async def main():
        one, two = Device_(sim, "e-1", "pw1"), Device_(sim, "e-2", "pw2")
        await one.mqtt.connect()
        await two.mqtt.connect()
        await two.mqtt.subscribe("echo/e-2/down", qos=1)
        for stolen in ("echo/e-2/down", "echo/#", "echo/+/down", "echo/e-1/down/#"):
            with pytest.raises(MQTTError):
                await one.mqtt.subscribe(stolen, qos=1)
        assert await one.mqtt.subscribe("echo/e-1/down/+", qos=0) == 0  # inside its pattern
        await one.mqtt.publish("echo/e-2/up", b'{"spoof": 1}', qos=1)  # dropped, not echoed
        await one.mqtt.publish("echo/e-1/up", b'{"mine": 1}', qos=1)
        with pytest.raises(asyncio.TimeoutError):
            await two.next(timeout=0.5)
        assert one.mqtt.connected and two.mqtt.connected  # a denial is not a disconnect
        await one.mqtt.disconnect()
        await two.mqtt.disconnect()

    run(main())
    sim.wait_event("e-1", "denied", "publish echo/e-2/up")
    assert echo.uplinks == [("e-1", {"mine": 1})]
    denied = [e["text"] for e in sim.events("e-1", "denied")]
    assert "subscribe echo/# (ACL)" in denied


def test_a_dollar_topic_publish_reaches_the_plugin(sim):
    # amqtt alone closes a client that publishes to a "$" topic; Azure's devices must.
    sim.clouds["echo"].add("e-1", "pw1")

    async def main():
        dev = Device_(sim, "e-1", "pw1")
        await dev.mqtt.connect()
        await dev.mqtt.subscribe("echo/e-1/down/rpc", qos=1)
        await dev.mqtt.publish("$echo/e-1/rpc", b'{"add": [1, 2]}', qos=1)
        got = await dev.next()
        await dev.mqtt.publish("$echo/e-2/rpc", b"{}", qos=1)  # not its own: denied
        assert dev.mqtt.connected
        await dev.mqtt.disconnect()
        return got

    assert run(main()) == ("echo/e-1/down/rpc", {"result": {"add": [1, 2]}})
    sim.wait_event("e-1", "denied", "$echo/e-2/rpc")


def test_a_retained_publish_of_the_cloud_reaches_a_later_subscriber(sim):
    sim.clouds["echo"].add("e-1", "pw1")
    sim.call(sim.publish, "echo/e-1/down", b'{"config": 3}', 1, True)

    async def main():
        dev = Device_(sim, "e-1", "pw1")
        await dev.mqtt.connect()
        await dev.mqtt.subscribe("echo/e-1/down", qos=1)
        got = await dev.next()
        await dev.mqtt.disconnect()
        return got

    assert run(main()) == ("echo/e-1/down", {"config": 3})


def test_same_id_in_two_clouds_and_an_empty_client_id(sim):
    sim.add_device("twin", secret="arduino-pw")
    sim.clouds["echo"].add("twin", "echo-pw")

    async def main():
        arduino = MQTTClient(
            "twin", "127.0.0.1", sim.ports["password"], user="twin", password="arduino-pw",
            ssl=client_ssl(sim), server_hostname="localhost",
        )  # fmt: skip
        await arduino.connect()
        echo = Device_(sim, "twin", "echo-pw", client_id="")  # the front names the session
        await echo.mqtt.connect()
        await echo.mqtt.subscribe("echo/twin/down", qos=1)
        await echo.mqtt.publish("echo/twin/up", b"[1]", qos=1)
        assert (await echo.next())[1] == {"echo": [1]}
        assert arduino.connected  # no takeover across clouds
        await echo.mqtt.disconnect()
        await arduino.disconnect()

    run(main())
    assert sim.device("twin", "arduino").connects == 1
    assert sim.device("twin", "echo").connects == 1


def test_common_knobs_apply_to_every_cloud(sim):
    sim.clouds["echo"].add("e-1", "pw1")
    sim.set_knobs(mute=["echo"])

    async def main():
        dev = Device_(sim, "e-1", "pw1")
        await dev.mqtt.connect()
        await dev.mqtt.subscribe("echo/e-1/down", qos=1)
        await dev.mqtt.publish("echo/e-1/up", b"1", qos=1)
        with pytest.raises(asyncio.TimeoutError):
            await dev.next(timeout=0.5)
        sim.set_knobs(mute=[], echo_wrap="again")  # the plug-in's own knob, same API
        await dev.mqtt.publish("echo/e-1/up", b"2", qos=1)
        assert await dev.next() == ("echo/e-1/down", {"again": 2})
        await asyncio.get_running_loop().run_in_executor(None, sim.drop, "e-1", "echo")
        await asyncio.wait_for(dev.mqtt.wait_closed(), 5)
        sim.set_knobs(refuse_connect=True)
        with pytest.raises(MQTTConnectError) as err:
            await Device_(sim, "e-1", "pw1").mqtt.connect()
        return err.value.code

    assert run(main()) == 5
    assert sim.events("e-1", "muted", cloud="echo")
    assert sim.knobs.as_dict()["echo_wrap"] == "again"
    with pytest.raises(ValueError):
        sim.set_knobs(mute=["no_such_kind"])
    assert sim.events("e-1", "refused")[-1]["text"] == "refuse_connect knob"


def test_an_https_route_of_the_plugin(sim):
    sim.clouds["echo"].add("e-1", "pw1")
    url = "https://localhost:%d/v1/devices/e-1/down" % sim.ports["echo-api"]

    def post(token):
        req = urllib.request.Request(url, data=b'{"x": 1}', method="POST")
        req.add_header("Authorization", "Bearer " + token)
        with urllib.request.urlopen(req, timeout=5, context=client_ssl(sim)) as resp:
            return resp.status, json.loads(resp.read())

    async def main():
        dev = Device_(sim, "e-1", "pw1")
        await dev.mqtt.connect()
        await dev.mqtt.subscribe("echo/e-1/down", qos=1)
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(None, post, "pw1") == (200, {"sent": True})
        got = await dev.next()
        with pytest.raises(urllib.error.HTTPError) as err:
            await loop.run_in_executor(None, post, "wrong")
        await dev.mqtt.disconnect()
        return got, err.value.code

    assert run(main()) == (("echo/e-1/down", {"x": 1}), 401)


def test_dashboard_state_lists_the_devices_of_every_cloud(sim):
    sim.add_device("a-1", secret="x")
    sim.clouds["echo"].add("e-1", "pw1")
    with urllib.request.urlopen(sim.dashboard_url + "api/state", timeout=5) as resp:
        state = json.loads(resp.read())
    assert {(d["cloud"], d["id"]) for d in state["devices"]} == {
        ("arduino", "a-1"),
        ("echo", "e-1"),
    }
    assert state["clouds"] == ["arduino", "echo"]
    assert state["echo_uplinks"] == 0 and "things" in state  # each plug-in's state()
    assert "echo" in state["reply_kinds"] and "thing_id" in state["reply_kinds"]
    assert {"password", "certificate", "echo", "echo-api", "http"} <= set(state["ports"])


@pytest.mark.parametrize(
    "pattern, topic, expected",
    [
        ("a/b", "a/b", True),
        ("a/+", "a/b", True),
        ("a/+", "a/b/c", False),
        ("a/#", "a", True),
        ("a/#", "a/b/c", True),
        ("+/b", "$sys/b", False),
        ("#", "$iothub/x", False),
        ("$iothub/twin/res/#", "$iothub/twin/res/200/?$rid=1", True),
    ],
)
def test_topic_matches(pattern, topic, expected):
    assert matches(pattern, topic) is expected


@pytest.mark.parametrize(
    "pattern, sub_filter, expected",
    [
        ("a/b", "a/b", True),
        ("a/b", "a/+", False),
        ("a/+", "a/+", True),
        ("a/+", "a/#", False),
        ("a/#", "a/+/c", True),
        ("a/#", "a/#", True),
        ("a/+/c", "a/b/c", True),
        ("#", "$SYS/#", False),
        ("devices/d1/messages/devicebound/#", "devices/d1/messages/devicebound/#", True),
        ("devices/d1/messages/devicebound/#", "devices/+/messages/devicebound/#", False),
    ],
)
def test_subscribe_filter_covered_by_pattern(pattern, sub_filter, expected):
    assert covers(pattern, sub_filter) is expected


def test_a_persistent_session_gets_what_was_sent_while_offline(sim):
    # Azure's devices connect with CleanSession 0 and expect C2D queued meanwhile.
    sim.clouds["echo"].add("e-1", "pw1")

    def device():
        return Device_(sim, "e-1", "pw1", clean_session=False)

    async def main():
        dev = device()
        await dev.mqtt.connect()
        await dev.mqtt.subscribe("echo/e-1/down", qos=1)
        await dev.mqtt.disconnect()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sim.wait_connected, "e-1", False, 5, "echo")
        await loop.run_in_executor(None, sim.clouds["echo"].inject, "e-1", {"queued": 1})
        dev = device()
        await dev.mqtt.connect()  # no SUBSCRIBE this time: the session kept it
        got = await dev.next()
        await dev.mqtt.disconnect()
        return got

    assert run(main()) == ("echo/e-1/down", {"queued": 1})
    assert sim.device("e-1", "echo").connects == 2


def self_signed(tmp_path, name):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "c.pem").write_bytes(pem)
    (tmp_path / "k.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    der = cert.public_bytes(serialization.Encoding.DER)
    return pem, hashlib.sha256(der).hexdigest(), (tmp_path / "c.pem", tmp_path / "k.pem")


def test_a_self_signed_certificate_trusted_by_the_plugin(sim, tmp_path):
    pem, thumbprint, files = self_signed(tmp_path, "e-x")
    (tmp_path / "other").mkdir()
    other_pem, _, other_files = self_signed(tmp_path / "other", "intruder")
    sim.clouds["echo"].add("e-x", "unused", thumbprint=thumbprint)

    def connect(files):
        ctx = client_ssl(sim)
        ctx.load_cert_chain(str(files[0]), str(files[1]))
        mqtt = MQTTClient(
            "e-x", "127.0.0.1", sim.ports["echo-x509"], ssl=ctx, server_hostname="localhost"
        )

        async def main():
            try:
                await mqtt.connect()
            except MQTTConnectError as exc:
                return exc.code
            except (OSError, MQTTError):
                return "handshake failed"
            await mqtt.disconnect()
            return 0

        return run(main())

    assert connect(files) == "handshake failed"  # not trusted yet: no TLS session at all
    sim.trust("echo-x509", pem)
    sim.trust("echo-x509", other_pem)
    assert connect(files) == 0
    assert sim.wait_event("e-x", "connected")["text"].startswith("x509 auth")
    assert connect(other_files) == 5  # chains (to itself) but is not this device's
    assert "is not e-x's" in sim.events("e-x", "refused")[-1]["text"]
