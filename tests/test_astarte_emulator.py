"""The Astarte emulator plug-in (tools/cloudsim/plugins/astarte) on its own: the pairing API
(JWT, secrets, CSR, verify, knobs), the broker's identity and ACL, and every check the
server makes on a device's messages. A paho client stands in for the device; BSON is
pymongo's. tests/test_astarte_sdk_fidelity.py runs the official SDK against it.
"""

import datetime
import json
import math
import queue
import socket
import ssl
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import bson
import paho.mqtt.client as mqtt
import pytest
from bson.int64 import Int64
from cloudsim_fixtures import MqttProbe, start_cloudsim_process, stop_process
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tools.cloudsim import CloudSim
from tools.cloudsim.plugins.astarte import interfaces as ifc
from tools.cloudsim.plugins.astarte import properties as purge
from tools.cloudsim.plugins.astarte.pairing import Realm

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.timeout(60)

IFACES = ROOT / "tests" / "ref" / "astarte_interfaces"
SENSORS = "org.tether.test.Sensors"
GEO = "org.tether.test.Geolocation"
DEV_PROPS = "org.tether.test.DeviceSettings"
SRV_PROPS = "org.tether.test.ServerSettings"
COMMANDS = "org.tether.test.Commands"
STRICT = {  # a device property without allow_unset
    "interface_name": "org.tether.test.Strict",
    "version_major": 1,
    "version_minor": 0,
    "type": "properties",
    "ownership": "device",
    "mappings": [{"endpoint": "/mode", "type": "string"}],
}
INTROSPECTION = "%s:1:0;%s:1:1;%s:0:2;%s:1:0;%s:2:0;org.tether.test.Strict:1:0" % (
    SENSORS,
    GEO,
    DEV_PROPS,
    SRV_PROPS,
    COMMANDS,
)
DEV_ID = "AJInS0w3VpWpuOqkXhgZdA"
UTC = datetime.timezone.utc


@pytest.fixture
def sim(tmp_path):
    s = CloudSim(tmp_path / "cloudsim", clouds=["astarte"]).start()
    s.clouds["astarte"].add_interfaces_dir(IFACES)
    s.clouds["astarte"].add_interface(STRICT)
    try:
        yield s
    finally:
        s.stop()


def api(sim, method, path, body=None, token=None):
    """-> (status, JSON body) of a pairing API call over TLS, verified with the test CA."""
    ctx = ssl.create_default_context(cafile=str(sim.ca.cert_pem_path))
    url = sim.clouds["astarte"].pairing_url + path
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def csr_pem(key, cn):
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Devices"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def pair(sim, tmp_path, device_id=DEV_ID):
    """Register and get a certificate through the API; -> (secret, cert path, key path)."""
    astarte = sim.clouds["astarte"]
    status, body = api(
        sim, "POST", "/v1/test/agent/devices", {"data": {"hw_id": device_id}}, astarte.agent_jwt()
    )
    assert status == 201, body
    secret = body["data"]["credentials_secret"]
    key = ec.generate_private_key(ec.SECP256R1())
    status, body = api(
        sim,
        "POST",
        "/v1/test/devices/%s/protocols/astarte_mqtt_v1/credentials" % device_id,
        {"data": {"csr": csr_pem(key, "test/" + device_id)}},
        secret,
    )
    assert status == 201, body
    cert = tmp_path / ("%s.crt" % device_id)
    cert.write_text(body["data"]["client_crt"])
    keyfile = tmp_path / ("%s.key" % device_id)
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return secret, cert, keyfile


class Device(MqttProbe):
    """A paho device on the Astarte listener (empty client id), recording QoS too."""

    def __init__(self, sim, cert, key, device_id=DEV_ID):
        self.base = "test/" + device_id
        self.qos = queue.Queue()
        super().__init__(sim, "", port_kind="astarte-mqtt", cert=(cert, key), keepalive=60)

        def on_message(c, u, m):
            self.messages.put((m.topic, bytes(m.payload)))
            self.qos.put((m.topic, m.qos))

        self.client.on_message = on_message

    def pub(self, rest, payload, qos=2):
        self.publish(self.base + rest if rest else self.base, payload, qos)


def connected_device(sim, tmp_path, introspection=INTROSPECTION):
    _, cert, key = pair(sim, tmp_path)
    dev = Device(sim, cert, key)
    assert dev.connack_code() == 0
    if introspection is not None:
        dev.pub("", introspection)
        sim.clouds["astarte"].wait(lambda: sim.clouds["astarte"].introspection(DEV_ID), 5)
    return dev


def rejection(sim, n=1, timeout=5):
    astarte = sim.clouds["astarte"]
    try:
        astarte.wait(lambda: len(astarte.rejected(DEV_ID)) >= n, timeout)
    except TimeoutError:
        raise AssertionError("rejection %d not seen: %s" % (n, sim.events(DEV_ID)[-6:]))
    return astarte.rejected(DEV_ID)[n - 1][1]


def ms(t):
    return datetime.datetime.fromtimestamp(t / 1000, UTC)


# -- interfaces ---------------------------------------------------------------------------------


def test_interface_errors_name_the_field():
    good = json.loads((IFACES / "org.tether.test.Sensors.json").read_text())
    assert ifc.load(good).mapping("/a/temperature").qos == 1
    cases = [
        ({"interface_name": "1bad"}, "interface_name"),
        ({"version_major": 0, "version_minor": 0}, "both 0"),
        ({"type": "stream"}, "type"),
        ({"ownership": "cloud"}, "ownership"),
        ({"aggregation": "object", "type": "properties"}, "properties"),
        ({"mappings": []}, "mappings"),
    ]
    for change, word in cases:
        with pytest.raises(ifc.InterfaceError, match=word):
            ifc.load(dict(good, **change))
    bad_maps = [
        ({"endpoint": "no-slash", "type": "double"}, "endpoint"),
        ({"endpoint": "/a/%{x y}", "type": "double"}, "level"),
        ({"endpoint": "/a", "type": "float"}, "type"),
        ({"endpoint": "/a", "type": "double", "reliability": "sometimes"}, "reliability"),
        ({"endpoint": "/a", "type": "double", "allow_unset": True}, "allow_unset"),
    ]
    for mapping, word in bad_maps:
        with pytest.raises(ifc.InterfaceError, match=word):
            ifc.load(dict(good, mappings=[mapping]))
    dup = [{"endpoint": "/%{a}/x", "type": "double"}, {"endpoint": "/%{b}/x", "type": "double"}]
    with pytest.raises(ifc.InterfaceError, match="ambiguous"):
        ifc.load(dict(good, mappings=dup))


def test_purge_list_codec_both_header_orders():
    wire = purge.encode(["a.B/x", "a.C/y/z"])
    assert wire[:4] == b"\x00\x00\x00\x0d"
    assert purge.decode(wire) == (["a.B/x", "a.C/y/z"], "big")
    little = (13).to_bytes(4, "little") + zlib.compress(b"a.B/x;a.C/y/z")
    assert purge.decode(little) == (["a.B/x", "a.C/y/z"], "little")
    assert purge.encode([]) == bytes.fromhex("00000000789c030000000001")
    assert purge.decode(purge.encode([])) == ([], "big")
    with pytest.raises(purge.PurgeError):
        purge.decode(b"\x00\x00\x00\x05not zlib")
    bomb = b"\x00\x00\x00\x01" + zlib.compress(b"a" * (purge.MAX_TEXT + 10))
    with pytest.raises(purge.PurgeError, match="inflates"):
        purge.decode(bomb)


# -- pairing API ----------------------------------------------------------------------------------


def test_registration_needs_a_realm_signed_jwt_with_a_pa(sim):
    astarte = sim.clouds["astarte"]
    body = {"data": {"hw_id": DEV_ID}}
    path = "/v1/test/agent/devices"
    assert api(sim, "POST", path, body)[0] == 401
    other = astarte.add_realm("other")
    assert api(sim, "POST", path, body, other.agent_jwt())[0] == 401  # wrong key
    expired = astarte.agent_jwt(now=time.time() - 3600, ttl_s=60)
    status, reply = api(sim, "POST", path, body, expired)
    assert status == 401 and "errors" in reply
    assert api(sim, "POST", path, body, astarte.agent_jwt(paths=["GET::.*"]))[0] == 403
    assert api(sim, "POST", path, {"data": {"hw_id": "short"}}, astarte.agent_jwt())[0] == 422
    ec_realm = astarte.add_realm("ecrealm", key_type="ec")  # ES256 tokens work too
    status, reply = api(sim, "POST", "/v1/ecrealm/agent/devices", body, ec_realm.agent_jwt())
    assert status == 201
    assert api(sim, "POST", "/v1/nosuch/agent/devices", body, astarte.agent_jwt())[0] == 404


def test_secret_repeat_until_used_then_422_and_credentials(sim, tmp_path):
    astarte = sim.clouds["astarte"]
    body, path, jwt = {"data": {"hw_id": DEV_ID}}, "/v1/test/agent/devices", astarte.agent_jwt()
    s1 = api(sim, "POST", path, body, jwt)[1]["data"]["credentials_secret"]
    status, reply = api(sim, "POST", path, body, jwt)
    assert status == 201 and reply["data"]["credentials_secret"] != s1
    s2 = reply["data"]["credentials_secret"]
    info = "/v1/test/devices/%s" % DEV_ID
    assert api(sim, "GET", info, token=s1)[0] == 401  # replaced
    status, reply = api(sim, "GET", info, token=s2)
    url = reply["data"]["protocols"]["astarte_mqtt_v1"]["broker_url"]
    assert status == 200 and url == "mqtts://127.0.0.1:%d/" % sim.ports["astarte-mqtt"]
    assert api(sim, "POST", path, body, jwt)[0] == 422  # the secret was used

    cred = "/v1/test/devices/%s/protocols/astarte_mqtt_v1/credentials" % DEV_ID
    key = ec.generate_private_key(ec.SECP256R1())
    status, reply = api(sim, "POST", cred, {"data": {"csr": csr_pem(key, "test/other")}}, s2)
    assert status == 422 and "CN" in reply["errors"]["detail"]
    assert api(sim, "POST", cred, {"data": {"csr": "junk"}}, s2)[0] == 422
    status, reply = api(sim, "POST", cred, {"data": {"csr": csr_pem(key, "test/" + DEV_ID)}}, s2)
    assert status == 201
    pem = reply["data"]["client_crt"]
    cert = x509.load_pem_x509_certificate(pem.encode())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "test/" + DEV_ID
    life = cert.not_valid_after_utc - datetime.datetime.now(UTC)
    assert datetime.timedelta(hours=23) < life <= datetime.timedelta(days=1)
    status, reply = api(sim, "POST", cred + "/verify", {"data": {"client_crt": pem}}, s2)
    assert status == 200 and reply["data"]["valid"] is True and reply["data"]["until"]
    # The OpenAPI examples' field name works too.
    reply = api(sim, "POST", cred + "/verify", {"data": {"client_certificate": pem}}, s2)[1]
    assert reply["data"]["valid"] is True
    astarte.revoke_certificates(DEV_ID)
    reply = api(sim, "POST", cred + "/verify", {"data": {"client_crt": pem}}, s2)[1]
    assert reply["data"] == dict(reply["data"], valid=False, cause="REVOKED")

    sim.set_knobs(astarte_expired_certs=True)
    pem = api(sim, "POST", cred, {"data": {"csr": csr_pem(key, "test/" + DEV_ID)}}, s2)[1]
    reply = api(
        sim, "POST", cred + "/verify", {"data": {"client_crt": pem["data"]["client_crt"]}}, s2
    )
    assert reply[1]["data"]["valid"] is False and reply[1]["data"]["cause"] == "EXPIRED"
    sim.set_knobs(astarte_refuse_credentials=True)
    assert api(sim, "POST", cred, {"data": {"csr": csr_pem(key, "test/" + DEV_ID)}}, s2)[0] == 403
    status, reply = api(sim, "DELETE", "/v1/test/agent/devices/" + DEV_ID, token=jwt)
    assert status == 204 and api(sim, "GET", info, token=s2)[0] == 401


# -- broker: identity, ACL, QoS ---------------------------------------------------------------


def test_identity_is_the_certificate_cn_and_acl_is_realm_device(sim, tmp_path):
    astarte = sim.clouds["astarte"]
    _, cert, key = pair(sim, tmp_path)
    nocert = MqttProbe(sim, "", port_kind="astarte-mqtt")
    assert nocert.connack_code() == 5
    nocert.close()
    dev = Device(sim, cert, key)
    assert dev.connack_code() == 0
    assert sim.wait_connected(DEV_ID, cloud="astarte").auth == "certificate"
    assert dev.subscribe("test/%s/%s/#" % (DEV_ID, SRV_PROPS), qos=2) == 2
    assert dev.subscribe("test/other/#", qos=2) == 0x80
    dev.publish("test/other/%s/s/temperature" % SENSORS, b"x", qos=1)
    sim.wait_event(DEV_ID, "denied", "test/other/")
    dev.close()
    sim.set_knobs(astarte_refuse_certs=True)
    refused = Device(sim, cert, key)
    assert refused.connack_code() == 5
    refused.close()
    sim.set_knobs(astarte_refuse_certs=False)
    astarte.revoke_certificates(DEV_ID)
    revoked = Device(sim, cert, key)
    assert revoked.connack_code() == 5
    revoked.close()
    # Refusals are logged under the client id (empty here), with the plug-in's reason.
    assert [e for e in sim.events(kind="refused", cloud="astarte") if "revoked" in e["text"]]


def test_expired_certificate_fails_the_tls_handshake(sim, tmp_path):
    sim.set_knobs(astarte_expired_certs=True)
    _, cert, key = pair(sim, tmp_path)
    ctx = ssl.create_default_context(cafile=str(sim.ca.cert_pem_path))
    ctx.load_cert_chain(str(cert), str(key))
    with socket.create_connection(("127.0.0.1", sim.ports["astarte-mqtt"]), timeout=5) as raw:
        # TLS 1.3: the server checks the client's certificate after the client finished:
        # the connection then ends (an alert or EOF) before any CONNACK.
        try:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00")
                assert tls.recv(4) == b""
        except (ssl.SSLError, ConnectionError):
            pass
    assert sim.device(DEV_ID, "astarte").connects == 0


def test_empty_cache_resends_server_properties_then_the_purge_list(sim, tmp_path):
    astarte = sim.clouds["astarte"]
    dev = connected_device(sim, tmp_path)
    assert dev.subscribe(dev.base + "/control/consumer/properties", qos=2) == 2
    assert dev.subscribe("%s/%s/#" % (dev.base, SRV_PROPS), qos=2) == 2
    assert dev.subscribe("%s/%s/#" % (dev.base, COMMANDS), qos=2) == 2
    astarte.set_server_property(DEV_ID, SRV_PROPS, "/threshold", 1.5, notify=False)
    astarte.set_server_property(DEV_ID, SRV_PROPS, "/s1/enabled", True, notify=False)
    dev.pub("/control/emptyCache", b"1")
    got = [dev.next(timeout=5) for _ in range(3)]
    topics = [t for t, _ in got]
    assert topics[-1] == dev.base + "/control/consumer/properties"
    assert sorted(topics[:2]) == sorted(
        ["%s/%s/threshold" % (dev.base, SRV_PROPS), "%s/%s/s1/enabled" % (dev.base, SRV_PROPS)]
    )
    payload = got[-1][1]
    text = zlib.decompress(payload[4:]).decode()
    assert int.from_bytes(payload[:4], "big") == len(text)
    assert sorted(text.split(";")) == [SRV_PROPS + "/s1/enabled", SRV_PROPS + "/threshold"]
    assert bson.decode(dict(got)["%s/%s/threshold" % (dev.base, SRV_PROPS)]) == {"v": 1.5}
    # QoS 2 both ways: properties at 2; a server datastream at its mapping's QoS.
    while not dev.qos.empty():
        assert dev.qos.get()[1] == 2
    assert astarte.send_server_datastream(DEV_ID, COMMANDS, "/lamp/command", "on")
    assert dev.next(timeout=5)[0].endswith("/lamp/command") and dev.qos.get()[1] == 2
    assert astarte.send_server_datastream(DEV_ID, COMMANDS, "/lamp/setpoint", 2.5)
    assert dev.next(timeout=5)[0].endswith("/lamp/setpoint") and dev.qos.get()[1] == 1
    # An unset is an empty payload.
    assert astarte.unset_server_property(DEV_ID, SRV_PROPS, "/threshold")
    assert dev.next(timeout=5) == ("%s/%s/threshold" % (dev.base, SRV_PROPS), b"")
    with pytest.raises(ValueError):
        astarte.set_server_property(DEV_ID, SRV_PROPS, "/threshold", 3)  # an int, not a double
    with pytest.raises(ValueError):
        astarte.set_server_property(DEV_ID, DEV_PROPS, "/name", "x")  # device-owned
    dev.close()


def test_producer_purge_accepts_both_header_orders(sim, tmp_path):
    astarte = sim.clouds["astarte"]
    dev = connected_device(sim, tmp_path)
    for path, value in (("/name", "n"), ("/a/level", 1), ("/b/level", 2)):
        dev.pub("/%s%s" % (DEV_PROPS, path), bson.encode({"v": value}))
    astarte.wait(lambda: len(astarte.properties(DEV_ID)) == 3, 5)
    text = "%s/name;%s/a/level" % (DEV_PROPS, DEV_PROPS)
    dev.pub(
        "/control/producer/properties",
        len(text).to_bytes(4, "little") + zlib.compress(text.encode()),
    )
    astarte.wait(lambda: astarte.purges(DEV_ID), 5)
    assert astarte.purges(DEV_ID)[0]["header"] == "little"
    assert set(astarte.properties(DEV_ID)) == {DEV_PROPS + "/name", DEV_PROPS + "/a/level"}
    dev.pub("/control/producer/properties", purge.encode([DEV_PROPS + "/name"]))
    astarte.wait(lambda: len(astarte.purges(DEV_ID)) == 2, 5)
    assert astarte.purges(DEV_ID)[1]["header"] == "big"
    assert astarte.properties(DEV_ID) == {DEV_PROPS + "/name": "n"}
    dev.pub("/control/producer/properties", b"\x00\x00\x00\x01junk")
    assert "zlib" in rejection(sim)
    dev.close()


def test_every_message_is_checked_against_the_interfaces(sim, tmp_path):
    astarte = sim.clouds["astarte"]
    _, cert, key = pair(sim, tmp_path)
    dev = Device(sim, cert, key)
    assert dev.connack_code() == 0
    t = ms(1700000000000)
    good = bson.encode({"v": 1.5, "t": t})
    dev.pub("/%s/s/temperature" % SENSORS, good, qos=1)
    assert "introspection" in rejection(sim, 1)
    dev.pub("", INTROSPECTION.replace(SENSORS + ":1:0;", "") + ";org.x.Unknown:1:0")
    sim.wait_event(DEV_ID, "unknown-interface", "org.x.Unknown")
    cases = [
        ("/%s/s/temperature" % SENSORS, good, "not in the introspection"),
        ("/org.x.Unknown/a", good, "not installed"),
        ("/%s/lamp/command" % COMMANDS, bson.encode({"v": "on"}), "server-owned"),
    ]
    for n, (rest, payload, reason) in enumerate(cases, start=2):
        dev.pub(rest, payload)
        assert reason in rejection(sim, n), (rest, rejection(sim, n))
    dev.pub("", INTROSPECTION)
    astarte.wait(lambda: SENSORS in astarte.introspection(DEV_ID), 5)
    cases = [
        ("/%s/s/temperature" % SENSORS, b"\x05\x00\x00", "BSON"),
        ("/%s/s/temperature" % SENSORS, bson.encode({"v": 1, "t": t}), "double"),
        ("/%s/s/temperature" % SENSORS, bson.encode({"v": math.nan, "t": t}), "finite"),
        ("/%s/s/temperature" % SENSORS, bson.encode({"v": 1.5}), "explicit_timestamp"),
        ("/%s/s/temperature" % SENSORS, b"", "empty payload"),
        ("/%s/s/count" % SENSORS, bson.encode({"v": Int64(2**31), "t": t}), "integer"),
        ("/%s/s/count" % SENSORS, bson.encode({"v": True, "t": t}), "integer"),
        ("/%s/s/nosuch" % SENSORS, good, "no mapping"),
        ("/%s/home" % GEO, bson.encode({"v": {"latitude": 1.0, "longitude": 2.0}}), "incomplete"),
        (
            "/%s/home" % GEO,
            bson.encode({"v": {"latitude": 1.0, "longitude": 2.0, "label": "x", "z": 1}}),
            "not in the interface",
        ),
        (
            "/%s/home" % GEO,
            bson.encode({"v": {"latitude": 1.0, "longitude": 2.0, "label": "x"}, "t": t}),
            "no explicit_timestamp",
        ),
        ("/%s" % GEO, bson.encode({"v": {"latitude": 1.0}}), "no object"),
        ("/org.tether.test.Strict/mode", b"", "allow_unset"),
        ("/%s/name" % DEV_PROPS, bson.encode({"v": "x", "t": t}), "no timestamp"),
        ("/%s/name" % DEV_PROPS, bson.encode({"x": 1}), "no 'v'"),
    ]
    for n, (rest, payload, reason) in enumerate(cases, start=5):
        dev.pub(rest, payload)
        assert reason in rejection(sim, n), (rest, rejection(sim, n))
    assert astarte.datastreams(DEV_ID) == [] and astarte.properties(DEV_ID) == {}
    # The connection survived all of it; good messages are stored (longinteger as int32
    # or int64, an int64-encoded integer within int32 range).
    dev.pub("/%s/s/temperature" % SENSORS, good, qos=1)
    dev.pub("/%s/s/uptime" % SENSORS, bson.encode({"v": 5, "t": t}), qos=1)
    dev.pub("/%s/s/count" % SENSORS, bson.encode({"v": Int64(7), "t": t}), qos=1)
    dev.pub(
        "/%s/home" % GEO, bson.encode({"v": {"latitude": 1.0, "longitude": 2.0, "label": "x"}})
    )
    rec = astarte.wait_datastream(DEV_ID, GEO, "/home")
    assert rec["value"]["label"] == "x" and rec["qos"] == 2
    values = [(r["path"], r["value"]) for r in astarte.datastreams(DEV_ID, SENSORS)]
    assert values == [("/s/temperature", 1.5), ("/s/uptime", 5), ("/s/count", 7)]
    assert astarte.datastreams(DEV_ID, SENSORS)[0]["timestamp"] == t
    dev.close()


def test_oversized_frame_drops_the_connection(sim, tmp_path):
    dev = connected_device(sim, tmp_path)
    dev.pub("/%s/name" % DEV_PROPS, bson.encode({"v": "x" * 70000}))
    assert "over 65535" in rejection(sim)
    sim.wait_connected(DEV_ID, connected=False, cloud="astarte")
    dev.close()


def test_dashboard_state_and_server_property_route(sim, tmp_path):
    dev = connected_device(sim, tmp_path)
    assert dev.subscribe("%s/%s/#" % (dev.base, SRV_PROPS), qos=2) == 2
    url = "http://127.0.0.1:%d/api/astarte/device/%s/server-property" % (sim.ports["http"], DEV_ID)
    req = urllib.request.Request(
        url,
        data=json.dumps({"interface": SRV_PROPS, "path": "/threshold", "value": 4}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert json.loads(resp.read()) == {"sent": True}
    topic, payload = dev.next(timeout=5)
    assert bson.decode(payload) == {"v": 4.0} and type(bson.decode(payload)["v"]) is float
    assert dev.subscribe("%s/%s/#" % (dev.base, COMMANDS), qos=2) == 2
    req = urllib.request.Request(
        url.replace("server-property", "server-datastream"),
        data=json.dumps({"interface": COMMANDS, "path": "/a/setpoint", "value": 3}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert json.loads(resp.read()) == {"sent": True}
    want = ("%s/%s/a/setpoint" % (dev.base, COMMANDS), bson.encode({"v": 3.0}))
    assert dev.next(timeout=5) == want
    with urllib.request.urlopen(
        "http://127.0.0.1:%d/api/state" % sim.ports["http"], timeout=5
    ) as r:
        state = json.loads(r.read())["astarte"]
    assert state["devices"][DEV_ID]["server_properties"] == {SRV_PROPS + "/threshold": 4.0}
    assert "test" in state["realms"] and len(state["interfaces"]) == 6
    dev.close()


def test_command_line_keeps_the_realm_key_and_loads_interfaces(tmp_path):
    workdir = tmp_path / "cloudsim"
    (workdir / "astarte" / "interfaces").mkdir(parents=True)
    for path in IFACES.glob("*.json"):
        (workdir / "astarte" / "interfaces" / path.name).write_bytes(path.read_bytes())
    proc, info = start_cloudsim_process(workdir, extra_args=["--cloud", "astarte", "-q"])
    try:
        key_pem = (workdir / "astarte" / "realm-test.key.pem").read_bytes()
        assert (workdir / "astarte" / "realm-test.key.pem").stat().st_mode & 0o077 == 0
        token = Realm("test", private_key_pem=key_pem).agent_jwt()
        ctx = ssl.create_default_context(cafile=info["ca_pem"])
        url = (
            "https://127.0.0.1:%d/pairing/v1/test/agent/devices" % info["ports"]["astarte-pairing"]
        )
        req = urllib.request.Request(
            url,
            data=json.dumps({"data": {"hw_id": DEV_ID}}).encode(),
            headers={"Content-Type": "application/json", "Authorization": "Bearer " + token},
        )
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            assert resp.status == 201
        state = json.loads(
            urllib.request.urlopen(info["dashboard"] + "api/state", timeout=5).read()
        )
        assert len(state["astarte"]["interfaces"]) == 5
        assert DEV_ID in state["astarte"]["devices"]
    finally:
        stop_process(proc)


def test_persistent_session_gets_what_was_sent_while_away(sim, tmp_path):
    """A device connecting with CleanSession 0 (what Tether may do to skip the resync) finds
    its session again, and QoS 1/2 server data sent while it was away."""
    astarte = sim.clouds["astarte"]
    _, cert, key = pair(sim, tmp_path)
    got, flags = queue.Queue(), queue.Queue()

    def connect():
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="any", clean_session=False)
        c.tls_set(ca_certs=str(sim.ca.cert_pem_path), certfile=str(cert), keyfile=str(key))
        c.on_connect = lambda c_, u, f, rc, p: flags.put((f.session_present, rc.value))
        c.on_message = lambda c_, u, m: got.put((m.topic, bytes(m.payload), m.qos))
        c.connect("127.0.0.1", sim.ports["astarte-mqtt"], keepalive=60)
        c.loop_start()
        return c

    base = "test/" + DEV_ID
    c = connect()
    assert flags.get(timeout=5) == (False, 0)
    c.subscribe("%s/%s/#" % (base, COMMANDS), qos=2)
    c.publish(base, INTROSPECTION, qos=2).wait_for_publish(5)
    astarte.wait(lambda: astarte.introspection(DEV_ID), 5)
    c.disconnect()
    c.loop_stop()
    sim.wait_connected(DEV_ID, connected=False, cloud="astarte")
    assert astarte.send_server_datastream(DEV_ID, COMMANDS, "/lamp/command", "off") is False
    c = connect()
    try:
        assert flags.get(timeout=5) == (True, 0)
        topic, payload, qos = got.get(timeout=5)
        assert topic == "%s/%s/lamp/command" % (base, COMMANDS) and qos == 2
        assert bson.decode(payload) == {"v": "off"}
    finally:
        c.disconnect()
        c.loop_stop()


def test_session_present_as_a_real_broker_reports_it(sim, tmp_path):
    """What a device's persistent session relies on (tether.astarte persistent_session):
    an empty client id cannot have a session (CONNACK 2, as VerneMQ); a clean session ends
    with its connection even when a CleanSession 0 connect follows at once (amqtt keeps it a
    second); a kept one comes back with its subscriptions; Astarte can clear it."""
    astarte = sim.clouds["astarte"]
    _, cert, key = pair(sim, tmp_path)
    flags = queue.Queue()

    def connect(client_id, clean):
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                        clean_session=clean)  # fmt: skip
        c.tls_set(ca_certs=str(sim.ca.cert_pem_path), certfile=str(cert), keyfile=str(key))
        c.on_connect = lambda c_, u, f, rc, p: flags.put((f.session_present, rc.value))
        c.connect("127.0.0.1", sim.ports["astarte-mqtt"], keepalive=60)
        c.loop_start()
        return c

    def bye(c):
        c.disconnect()
        c.loop_stop()
        sim.wait_connected(DEV_ID, connected=False, cloud="astarte")

    from tether.mqtt_packet import connect_packet  # paho refuses to send this CONNECT

    ctx = ssl.create_default_context(cafile=str(sim.ca.cert_pem_path))
    ctx.load_cert_chain(str(cert), str(key))
    raw = socket.create_connection(("127.0.0.1", sim.ports["astarte-mqtt"]), timeout=5)
    with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(bytes(connect_packet("", 60, clean=False)))
        assert tls.recv(4) == b"\x20\x02\x00\x02"  # identifier rejected
    base = "test/" + DEV_ID
    c = connect(base, True)
    assert flags.get(timeout=5) == (False, 0)
    c.subscribe(base + "/" + COMMANDS + "/#", qos=2)
    astarte.wait(lambda: any(COMMANDS in f for f in astarte._dev(DEV_ID).subscriptions), 5)
    bye(c)
    c = connect(base, False)  # at once: the clean one must not be resumed
    assert flags.get(timeout=5) == (False, 0)
    dev = astarte._dev(DEV_ID)
    assert dev.subscriptions == set()  # nothing kept from the clean session
    c.subscribe(base + "/" + COMMANDS + "/#", qos=2)
    astarte.wait(lambda: dev.subscriptions, 5)
    bye(c)
    c = connect(base, False)
    assert flags.get(timeout=5) == (True, 0)
    astarte.wait(lambda: dev.subscriptions == {base + "/" + COMMANDS + "/#"}, 5)
    assert dev.sub_qos == {base + "/" + COMMANDS + "/#": 2}  # the plug-in knows it again
    c.loop_stop()  # no DISCONNECT: Astarte clears the session of a connected device
    assert astarte.clear_session(DEV_ID)
    sim.wait_connected(DEV_ID, connected=False, cloud="astarte")
    c = connect(base, False)
    try:
        assert flags.get(timeout=5) == (False, 0)
    finally:
        bye(c)
