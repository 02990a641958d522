"""The cloud emulator on its own, driven by paho-mqtt standing in for a device.

Proves the emulator behaves like protocols.md §1 says before any Tether device talks to it:
both auth ports, CONNACK refusals, topic permissions, both discovery flows, last values,
value storage (C++-style indefinite arrays and float16/32), writes, knobs, keepalive.
"""

import queue
import socket
import ssl
import struct
import time

import cbor2
import pytest
from cloudsim_fixtures import MqttProbe, cloudsim  # noqa: F401

from tools.cloudsim import CloudSim

pytestmark = pytest.mark.timeout(60)

NOT_AUTHORIZED = 5  # CONNACK return code
SUB_FAILURE = 0x80


def connect(sim, dev_id, secret, **kw):
    probe = MqttProbe(sim, dev_id, username=dev_id, password=secret, **kw)
    return probe, probe.connack_code()


def tagged(tag, *params):
    return cbor2.dumps(cbor2.CBORTag(tag, list(params)))


def command(payload):
    """(tag, [params]) of a /c/dw message (cbor2 decodes a tagged array as a tuple)."""
    item = cbor2.loads(payload)
    assert isinstance(item, cbor2.CBORTag), item
    return item.tag, list(item.value)


@pytest.fixture
def device(cloudsim):  # noqa: F811
    dev = cloudsim.add_device("dev-1", secret="s3cret")
    probe, code = connect(cloudsim, "dev-1", "s3cret")
    assert code == 0
    cloudsim.wait_connected("dev-1")
    yield dev, probe
    probe.close()


# -- authentication --------------------------------------------------------------------------


def test_password_auth_accepts_the_registered_secret(cloudsim):  # noqa: F811
    cloudsim.add_device("dev-1", secret="s3cret")
    probe, code = connect(cloudsim, "dev-1", "s3cret")
    try:
        assert code == 0
        dev = cloudsim.wait_connected("dev-1")
        assert dev.auth == "password"
    finally:
        probe.close()


@pytest.mark.parametrize(
    "client_id, username, password",
    [
        ("dev-1", "dev-1", "wrong"),  # bad secret
        ("dev-2", "dev-2", "s3cret"),  # unknown device
        ("dev-1", "dev-x", "s3cret"),  # username != client id
        ("dev-1", None, None),  # no credentials at all
    ],
)
def test_bad_password_credentials_get_connack_5(cloudsim, client_id, username, password):  # noqa: F811
    cloudsim.add_device("dev-1", secret="s3cret")
    t0 = time.monotonic()
    probe = MqttProbe(cloudsim, client_id, username=username, password=password)
    try:
        assert probe.connack_code() == NOT_AUTHORIZED
        assert time.monotonic() - t0 < 3  # a refusal, not a hang
        assert cloudsim.events(client_id, "refused")
        assert not cloudsim.device("dev-1").connected
    finally:
        probe.close()


def test_certificate_auth_maps_the_certificate_to_the_device(cloudsim):  # noqa: F811
    cloudsim.add_device("dev-c", certificate=True)
    files = cloudsim.device_files("dev-c")
    probe = MqttProbe(
        cloudsim, "dev-c", port_kind="certificate", cert=(files["cert_pem"], files["key_pem"])
    )
    try:
        assert probe.connack_code() == 0
        assert cloudsim.wait_connected("dev-c").auth == "certificate"
        # and the device works: it gets its thing id
        probe.subscribe("/a/d/dev-c/e/i")
        _, payload = probe.next("/a/d/dev-c/e/i")
        assert cbor2.loads(payload) == [{0: "thing_id", 3: cloudsim.device("dev-c").thing_id}]
    finally:
        probe.close()
    for name in ("cert_der", "key_der", "ca_der"):  # DER copies for MicroPython
        assert files[name].read_bytes()[:1] == b"\x30"


def test_certificate_of_another_device_is_refused(cloudsim):  # noqa: F811
    cloudsim.add_device("dev-a", certificate=True)
    cloudsim.add_device("dev-b", certificate=True)
    files = cloudsim.device_files("dev-a")
    probe = MqttProbe(
        cloudsim, "dev-b", port_kind="certificate", cert=(files["cert_pem"], files["key_pem"])
    )
    try:
        assert probe.connack_code() == NOT_AUTHORIZED
    finally:
        probe.close()


def test_certificate_port_without_certificate_is_refused(cloudsim):  # noqa: F811
    cloudsim.add_device("dev-c", secret="s3cret", certificate=True)
    # a password is not a way in on the certificate port
    probe = MqttProbe(
        cloudsim, "dev-c", username="dev-c", password="s3cret", port_kind="certificate"
    )
    try:
        assert probe.connack_code() == NOT_AUTHORIZED
    finally:
        probe.close()


def test_certificate_from_an_unknown_ca_fails_the_handshake(cloudsim):  # noqa: F811
    cloudsim.add_device("dev-c", certificate=True)
    ctx = ssl.create_default_context(cafile=str(cloudsim.ca.cert_pem_path))
    ctx.load_cert_chain(
        str(cloudsim.ca.bad_file("client_unknown_ca.crt.pem")),
        str(cloudsim.ca.bad_file("client_unknown_ca.key.pem")),
    )
    got = None
    with socket.create_connection(("127.0.0.1", cloudsim.ports["certificate"]), 5) as raw:
        raw.settimeout(5)
        try:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(mqtt_connect("dev-c", keepalive=10))
                got = tls.recv(4)  # TLS 1.3: the server's alert arrives on the first read
        except (ssl.SSLError, ConnectionError):
            got = "alert"
    assert got in ("alert", b"")  # no CONNACK: the connection is closed, promptly
    assert not cloudsim.events("dev-c", "connected")


def test_server_certificate_verifies_for_localhost_and_127_0_0_1(cloudsim):  # noqa: F811
    for name in ("localhost", "127.0.0.1"):
        ctx = ssl.create_default_context(cafile=str(cloudsim.ca.cert_pem_path))
        with socket.create_connection(("127.0.0.1", cloudsim.ports["password"]), 5) as raw:
            with ctx.wrap_socket(raw, server_hostname=name) as tls:
                assert tls.getpeercert()["subject"]


def test_refused_client_with_a_connected_devices_id_does_not_disturb_it(cloudsim, device):  # noqa: F811
    dev, probe = device
    assert probe.subscribe("/a/t/%s/e/i" % dev.thing_id, 0) == 0
    intruder = MqttProbe(cloudsim, "dev-1", username="dev-1", password="guess")
    try:
        assert intruder.connack_code() == NOT_AUTHORIZED
    finally:
        intruder.close()
    # the real device kept its connection and its subscriptions
    assert cloudsim.device("dev-1").connected
    cloudsim.write(dev.thing_id, "sw1", True)
    assert probe.next("/a/t/%s/e/i" % dev.thing_id)[1] == bytes.fromhex("81a2006373773104f5")


def test_garbage_instead_of_connect_is_closed(cloudsim):  # noqa: F811
    ctx = ssl.create_default_context(cafile=str(cloudsim.ca.cert_pem_path))
    with socket.create_connection(("127.0.0.1", cloudsim.ports["password"]), 5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.settimeout(5)
            tls.sendall(b"GET / HTTP/1.1\r\n\r\n")
            assert tls.recv(16) == b""
    cloudsim.wait_event(None, "bad-connect")


def test_refuse_connect_knob(cloudsim):  # noqa: F811
    cloudsim.add_device("dev-1", secret="s3cret")
    cloudsim.set_knobs(refuse_connect=True)
    probe, code = connect(cloudsim, "dev-1", "s3cret")
    probe.close()
    assert code == NOT_AUTHORIZED


# -- topic permissions -----------------------------------------------------------------------


def test_device_may_only_use_its_own_topics(cloudsim, device):  # noqa: F811
    dev, probe = device
    other = cloudsim.add_device("dev-2", secret="x")
    assert probe.subscribe("/a/d/dev-1/e/i") == 1
    assert probe.subscribe("/a/t/%s/e/i" % dev.thing_id, 0) == 0
    assert probe.subscribe("/a/d/dev-2/e/i") == SUB_FAILURE
    assert probe.subscribe("/a/t/%s/e/i" % other.thing_id) == SUB_FAILURE
    assert probe.subscribe("/a/#") == SUB_FAILURE
    assert probe.subscribe("/a/d/dev-1/secret") == SUB_FAILURE
    # publishing into another thing stores nothing
    probe.publish("/a/t/%s/e/o" % other.thing_id, cbor2.dumps([{0: "x", 2: 1}]))
    probe.publish("/a/t/%s/e/o" % dev.thing_id, cbor2.dumps([{0: "x", 2: 2}]))
    assert cloudsim.wait_for_value(dev.thing_id, "x") == 2
    assert cloudsim.values(other.thing_id) == {}


# -- legacy discovery (Python client) ------------------------------------------------------------


def test_legacy_thing_id_record_on_subscribe(cloudsim, device):  # noqa: F811
    dev, probe = device
    probe.subscribe("/a/d/dev-1/e/i")
    _, payload = probe.next("/a/d/dev-1/e/i")
    assert cbor2.loads(payload) == [{0: "thing_id", 3: dev.thing_id}]


def test_not_linked_device_gets_an_empty_thing_id(cloudsim):  # noqa: F811
    cloudsim.add_device("dev-n", secret="s", thing_id="")
    probe, code = connect(cloudsim, "dev-n", "s")
    try:
        assert code == 0
        probe.subscribe("/a/d/dev-n/e/i")
        assert cbor2.loads(probe.next("/a/d/dev-n/e/i")[1]) == [{0: "thing_id", 3: ""}]
        probe.subscribe("/a/d/dev-n/c/dw")
        probe.publish("/a/d/dev-n/c/up", tagged(0x010300, ""))
        assert command(probe.next("/a/d/dev-n/c/dw")[1]) == (0x010400, [""])
    finally:
        probe.close()


def test_get_last_values_on_shadow(cloudsim, device):  # noqa: F811
    dev, probe = device
    cloudsim.set_values(dev.thing_id, {"sw1": True, "loc": {"lat": 1.5, "lon": -2.25}})
    shadow_i = "/a/t/%s/shadow/i" % dev.thing_id
    probe.subscribe(shadow_i)
    probe.publish(
        "/a/t/%s/shadow/o" % dev.thing_id,
        bytes.fromhex("81a20063723a6d036d6765744c61737456616c756573"),
    )  # protocols.md §1.4 byte example
    pack = cbor2.loads(probe.next(shadow_i)[1])
    got = {r[0]: next(v for k, v in r.items() if k != 0) for r in pack}
    assert got == {
        "sw1": True,
        "loc:lat": 1.5,
        "loc:lon": -2.25,
        "tz_offset": 0,
        "tz_dst_until": 0,
    }


# -- command protocol (C++ 2.x) ------------------------------------------------------------------


def test_device_begin_answers_thing_update_only_to_c_dw_subscribers(cloudsim, device):  # noqa: F811
    dev, probe = device
    probe.subscribe("/a/d/dev-1/e/i")
    probe.next("/a/d/dev-1/e/i")
    probe.publish("/a/d/dev-1/c/up", bytes.fromhex("da000107008166312e342e3178"))  # noqa: E501 DeviceBegin ["1.4.1x"]
    assert cloudsim.wait_event("dev-1", "command", "DeviceBegin")
    assert probe.nothing("/a/d/dev-1/c/dw", 0.5)
    probe.subscribe("/a/d/dev-1/c/dw")
    probe.publish("/a/d/dev-1/c/up", tagged(0x010700, "2.9.0"))
    assert command(probe.next("/a/d/dev-1/c/dw")[1]) == (0x010400, [dev.thing_id])
    assert cloudsim.device("dev-1").lib_version == "2.9.0"


def test_thing_begin_and_last_values_begin(cloudsim, device):  # noqa: F811
    dev, probe = device
    cloudsim.set_values(dev.thing_id, {"temperature": 21.5, "name": "kitchen"})
    probe.subscribe("/a/d/dev-1/c/dw")
    probe.publish("/a/d/dev-1/c/up", bytes.fromhex("da0001030081" + "60"))  # ThingBegin [""]
    assert command(probe.next("/a/d/dev-1/c/dw")[1]) == (0x010400, [dev.thing_id])
    probe.publish("/a/d/dev-1/c/up", bytes.fromhex("da0001050080"))  # LastValuesBegin []
    tag, params = command(probe.next("/a/d/dev-1/c/dw")[1])
    assert tag == 0x010600 and len(params) == 1
    assert isinstance(params[0], bytes)  # a bstr wrapping the SenML pack
    pack = cbor2.loads(params[0])
    assert {"n": "temperature", "v": 21.5} in [{"n": r[0], "v": r.get(2)} for r in pack]
    assert {0: "name", 3: "kitchen"} in pack


def test_timezone_and_detach(cloudsim, device):  # noqa: F811
    dev, probe = device
    probe.subscribe("/a/d/dev-1/c/dw")
    cloudsim.send_timezone("dev-1", 3600, 1700000000)
    raw = probe.next("/a/d/dev-1/c/dw")[1]
    assert raw == bytes.fromhex("da0001090082190e101a6553f100")  # protocols.md §1.4
    thing = dev.thing_id
    cloudsim.detach("dev-1")
    assert command(probe.next("/a/d/dev-1/c/dw")[1]) == (0x011000, [thing])
    assert cloudsim.device("dev-1").thing_id == ""
    assert probe.subscribe("/a/t/%s/e/i" % thing) == SUB_FAILURE  # no longer its thing


# -- values and writes ---------------------------------------------------------------------------


def test_values_are_stored_with_history(cloudsim, device):  # noqa: F811
    dev, probe = device
    e_o = "/a/t/%s/e/o" % dev.thing_id
    t0 = time.time()
    probe.publish(e_o, bytes.fromhex("81a2006b74656d706572617475726502fb4039800000000000"))
    probe.publish(e_o, cbor2.dumps([{0: "temperature", 2: 26.0}, {0: "sw1", 4: True}]))
    cloudsim.wait_for_value(dev.thing_id, "temperature", 26.0)
    hist = cloudsim.history(dev.thing_id, "temperature")
    assert [v for _, v in hist] == [25.5, 26.0]
    assert all(t0 - 1 <= t <= time.time() for t, _ in hist)
    assert cloudsim.values(dev.thing_id)["sw1"] is True


def test_cpp_style_pack_indefinite_array_float16_float32(cloudsim, device):  # noqa: F811
    dev, probe = device
    # 9f (indefinite) {0:"a", 2: f16 1.5} {0:"b", 2: f32 0.25}
    # {0:"c", 2: f64 -3.0, 6: 1700000000} ff
    payload = (
        b"\x9f"
        + b"\xa2\x00\x61a\x02\xf9\x3e\x00"
        + b"\xa2\x00\x61b\x02\xfa\x3e\x80\x00\x00"
        + b"\xa3\x00\x61c\x02\xfb\xc0\x08\x00\x00\x00\x00\x00\x00\x06\x1a\x65\x53\xf1\x00"
        + b"\xff"
    )
    probe.publish("/a/t/%s/e/o" % dev.thing_id, payload)
    cloudsim.wait_for_value(dev.thing_id, "c")
    assert cloudsim.values(dev.thing_id) == {"a": 1.5, "b": 0.25, "c": -3.0}


def test_base_name_is_resolved(cloudsim, device):  # noqa: F811
    dev, probe = device
    probe.publish(
        "/a/t/%s/e/o" % dev.thing_id,
        cbor2.dumps([{-2: "loc:", 0: "lat", 2: 1.0}, {0: "lon", 2: 2.0}]),
    )
    cloudsim.wait_for_value(dev.thing_id, "loc:lon")
    assert cloudsim.values(dev.thing_id)["loc:lat"] == 1.0


def test_malformed_device_payload_is_recorded_not_fatal(cloudsim, device):  # noqa: F811
    dev, probe = device
    probe.publish("/a/t/%s/e/o" % dev.thing_id, b"\x9f\xa2\x00")
    probe.publish("/a/d/dev-1/c/up", b"\x81\x60")  # untagged
    cloudsim.wait_event("dev-1", "bad-payload", "c/up")
    probe.publish("/a/t/%s/e/o" % dev.thing_id, cbor2.dumps([{0: "ok", 4: False}]))
    assert cloudsim.wait_for_value(dev.thing_id, "ok") is False


def test_injected_writes_scalar_and_composite(cloudsim, device):  # noqa: F811
    dev, probe = device
    e_i = "/a/t/%s/e/i" % dev.thing_id
    probe.subscribe(e_i, 0)
    cloudsim.write(dev.thing_id, "sw1", True)
    assert probe.next(e_i)[1] == bytes.fromhex("81a2006373773104f5")  # protocols.md §1.4
    cloudsim.write(dev.thing_id, "light", {"swi": True, "hue": 120.0, "sat": 50.0, "bri": 80.0})
    pack = cbor2.loads(probe.next(e_i)[1])
    assert pack == [
        {0: "light:swi", 4: True},
        {0: "light:hue", 2: 120.0},
        {0: "light:sat", 2: 50.0},
        {0: "light:bri", 2: 80.0},
    ]


# -- knobs and connection faults ----------------------------------------------------------


def test_mute_delay_and_malformed_knobs(cloudsim, device):  # noqa: F811
    dev, probe = device
    probe.subscribe("/a/d/dev-1/c/dw")
    cloudsim.set_knobs(mute=["thing_update"])
    probe.publish("/a/d/dev-1/c/up", tagged(0x010300, ""))
    assert probe.nothing("/a/d/dev-1/c/dw", 0.5)
    cloudsim.set_knobs(mute=[], reply_delay_s=1.0)
    t0 = time.monotonic()
    probe.publish("/a/d/dev-1/c/up", tagged(0x010300, ""))
    probe.next("/a/d/dev-1/c/dw", 5)
    assert time.monotonic() - t0 >= 0.9
    cloudsim.set_knobs(reply_delay_s=0, malformed=["thing_update"])
    probe.publish("/a/d/dev-1/c/up", tagged(0x010300, ""))
    raw = probe.next("/a/d/dev-1/c/dw")[1]
    with pytest.raises(cbor2.CBORDecodeError):
        cbor2.loads(raw)
    with pytest.raises(ValueError):
        cloudsim.set_knobs(mute=["no_such_reply"])


def test_drop_cuts_the_connection(cloudsim, device):  # noqa: F811
    _, probe = device
    disconnected = queue.Queue()
    probe.client.on_disconnect = lambda *a: disconnected.put(a)
    assert cloudsim.drop("dev-1")
    disconnected.get(timeout=5)
    cloudsim.wait_connected("dev-1", connected=False)


def mqtt_connect(client_id, keepalive, username=None, password=None):
    def s(b):
        return struct.pack("!H", len(b)) + b

    flags = 0x02 | (0x80 if username else 0) | (0x40 if password else 0)
    var = s(b"MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive)
    payload = s(client_id.encode())
    if username:
        payload += s(username.encode())
    if password:
        payload += s(password.encode())
    body = var + payload
    return bytes([0x10, len(body)]) + body


def test_keepalive_enforced_at_one_and_a_half_times(cloudsim):  # noqa: F811
    cloudsim.add_device("dev-k", secret="pw")
    ctx = ssl.create_default_context(cafile=str(cloudsim.ca.cert_pem_path))
    with socket.create_connection(("127.0.0.1", cloudsim.ports["password"]), 5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(mqtt_connect("dev-k", 2, "dev-k", "pw"))
            assert tls.recv(4) == b"\x20\x02\x00\x00"
            t0 = time.monotonic()
            tls.settimeout(8)
            assert tls.recv(16) == b""  # closed by the broker, silently (no will, no DISCONNECT)
            waited = time.monotonic() - t0
    assert 2.5 <= waited <= 6, waited  # 1.5 x 2 s = 3 s (+ watchdog period, slow CI)
    cloudsim.wait_connected("dev-k", connected=False)


def test_restart_keeps_ports_registry_and_values(cloudsim, device):  # noqa: F811
    dev, probe = device
    probe.publish("/a/t/%s/e/o" % dev.thing_id, cbor2.dumps([{0: "t", 2: 3}]))
    cloudsim.wait_for_value(dev.thing_id, "t", 3)
    ports = dict(cloudsim.ports)
    cloudsim.restart()
    assert cloudsim.ports == ports
    assert cloudsim.values(dev.thing_id)["t"] == 3
    # paho reconnects by itself (loop_start) and gets in again
    cloudsim.wait_connected("dev-1", timeout=15)


def test_server_certificate_with_extra_names_for_a_lan_board(tmp_path):
    sim = CloudSim(tmp_path / "cs", dashboard=False, server_names=["board-host.test", "10.1.2.3"])
    with sim:
        for name in ("board-host.test", "10.1.2.3", "localhost"):
            ctx = ssl.create_default_context(cafile=str(sim.ca.cert_pem_path))
            with socket.create_connection(("127.0.0.1", sim.ports["password"]), 5) as raw:
                with ctx.wrap_socket(raw, server_hostname=name) as tls:
                    assert tls.version()
        ctx = ssl.create_default_context(cafile=str(sim.ca.cert_pem_path))
        with socket.create_connection(("127.0.0.1", sim.ports["password"]), 5) as raw:
            with pytest.raises(ssl.SSLCertVerificationError):
                ctx.wrap_socket(raw, server_hostname="other.test")


def test_registry_round_trip_keeps_types_and_is_private(tmp_path):
    from tools.cloudsim.plugins.arduino.store import Store

    store = Store()
    dev = store.add_device("dev-s", secret="pw", cert_fingerprint="ab" * 32)
    store.record_values(
        dev.thing_id,
        [
            {"name": n, "value": v, "t": None}
            for n, v in (("b", b"\x00\xff"), ("f", 1.5), ("i", 3), ("s", "x"), ("t", True))
        ],
    )
    path = tmp_path / "registry.json"
    store.save(path)
    assert path.stat().st_mode & 0o077 == 0
    again = Store()
    again.load(path)
    assert again.devices["dev-s"].secret == "pw"
    assert again.devices["dev-s"].thing_id == dev.thing_id
    assert again.things[dev.thing_id].values == {
        "b": b"\x00\xff",
        "f": 1.5,
        "i": 3,
        "s": "x",
        "t": True,
    }


def test_a_subscribe_during_a_broadcast_does_not_lose_the_message(cloudsim, device):  # noqa: F811
    # amqtt iterates its subscription map across awaits while broadcasting; the emulator
    # swaps in a map whose items() is a snapshot. Reproduce the race deterministically: a
    # new subscription lands while the broadcast awaits the topic check of the first of two
    # matching filters; the subscriber of the second must still get the message.
    dev, probe = device
    exact = "/a/t/%s/e/i" % dev.thing_id
    assert probe.subscribe(exact) == 1
    amqtt_broker = cloudsim.mqtt._broker
    # A second matching filter after the first (devices may not subscribe to wildcards, so
    # it is put straight into the broker's map for the same session).
    amqtt_broker._subscriptions["/a/t/%s/#" % dev.thing_id] = list(
        amqtt_broker._subscriptions[exact]
    )
    real_check = amqtt_broker._topic_filtering
    landed = []

    async def check_then_subscribe(session, topic, action):
        if not landed:
            landed.append(True)
            amqtt_broker._subscriptions["/late/filter"] = []  # what a concurrent SUBSCRIBE does
        return await real_check(session, topic=topic, action=action)

    amqtt_broker._topic_filtering = check_then_subscribe
    try:
        cloudsim.write(dev.thing_id, "led", True)
        got = [probe.messages.get(timeout=5), probe.messages.get(timeout=5)]
    finally:
        amqtt_broker._topic_filtering = real_check
    assert landed
    assert [t for t, _ in got] == [exact, exact]  # one copy per matching filter
    assert all(cbor2.loads(p) == [{0: "led", 4: True}] for _, p in got)
