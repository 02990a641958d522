"""The SAP IoT emulator plug-in (tools/cloudsim/plugins/sap) on its own.

A device certificate is issued as SAP's API hands it out (an encrypted bundle and its
secret), converted with tools/sap_cert.py, and used over mutual TLS on 127.0.0.1 by paho
(seed 002's client) and Tether's MQTTClient on CPython: measures in both forms acked 202,
invalid ones acked with an error code, the ack knobs, commands, ACLs, and every refusal
(wrong client id, no certificate, one registered to no device, another CA, expired) with
its reason in the emulator's log.
"""

import asyncio
import datetime
import json
import ssl
import time
import urllib.error
import urllib.request

import pytest
from cloudsim_fixtures import MqttProbe, cloudsim_factory  # noqa: F401
from tether.mqtt import MQTTClient, MQTTConnectError, MQTTError

from tools import sap_cert
from tools.cloudsim.plugins.sap import model

pytestmark = pytest.mark.timeout(60)

DEV = "dev-sap-1"
CMD = {"LED": True, "Speed": 50.0}


@pytest.fixture
def sim(cloudsim_factory):  # noqa: F811
    s = cloudsim_factory(clouds=["sap"])
    sap = s.clouds["sap"]
    sap.add_capability("env", [("temperature", "float"), ("unit", "string"), ("n", "integer")])
    sap.add_capability("switch", [("LED", "boolean"), ("Speed", "double")])
    sap.add_device(DEV, sensors={"s1": {"measures": ["env"], "commands": ["switch"]}})
    return s


def files_for(sim, tmp_path, device=DEV, **kw):
    """Issue a bundle like SAP's, convert it like a user would; -> tools.sap_cert paths."""
    bundle = sim.clouds["sap"].issue_certificate(device, **kw)
    out = tmp_path / ("files-%s-%d" % (device, len(list(tmp_path.iterdir()))))
    return sap_cert.write(sap_cert.convert(bundle["pem"], bundle["secret"]), str(out))


def probe(sim, files, client_id=DEV):
    return MqttProbe(sim, client_id, port_kind="sap", cert=(files["cert.pem"], files["key.pem"]))


def measure(cap="env", sensor="s1", measures=None, **extra):
    body = {"capabilityAlternateId": cap, "sensorAlternateId": sensor}
    body["measures"] = measures if measures is not None else [[21.5, "C", 3]]
    body.update(extra)
    return json.dumps(body)


def next_ack(p, timeout=5):
    return json.loads(p.next("ack/" + DEV, timeout)[1])


def test_seed_002_flow_measures_in_both_forms_get_202(sim, tmp_path):
    files = files_for(sim, tmp_path)
    p = probe(sim, files)
    try:
        assert p.connack_code() == 0
        assert p.subscribe("ack/" + DEV) == 1
        p.publish("measures/" + DEV, measure())  # an array in property order
        assert next_ack(p) == {
            "capabilityAlternateId": "env",
            "sensorAlternateId": "s1",
            "code": 202,
        }
        p.publish("measures/" + DEV, measure(measures=[{"temperature": "22.25"}, {"n": 7}]))
        assert next_ack(p)["code"] == 202
    finally:
        p.close()
    sap = sim.clouds["sap"]
    first, second = sap.wait_measure(DEV), sap.wait_measure(DEV, count=2)
    assert first["samples"] == [{"temperature": 21.5, "unit": "C", "n": 3}]
    assert second["samples"] == [{"temperature": 22.25}, {"n": 7}]  # strings converted
    assert (first["capability"], first["sensor"], first["code"]) == ("env", "s1", 202)
    assert sim.events(DEV, "connected", cloud="sap")[0]["text"].startswith("certificate auth")
    with urllib.request.urlopen(sim.dashboard_url + "api/state", timeout=5) as resp:
        state = json.loads(resp.read())
    assert len(state["sap"]["devices"][DEV]["measures"]) == 2


@pytest.mark.parametrize(
    "body, message",
    [
        (measure(measures=[[21.5, "C"]]), "measures[0]: 2 values for 3 properties"),
        (
            measure(measures=[{"temperature": "warm"}]),
            "measures[0].temperature: 'warm' is not a number (float)",
        ),
        (measure(measures=[{"humidity": 1}]), "humidity not a property of env"),
        (measure(measures=[{"n": 2**31}]), "out of range for integer"),
        (measure(measures=[]), "non-empty array"),
        (measure(cap="switch"), "capability switch is not a measure of sensor s1"),
        (measure(sensor="s9"), "sensor s9 is not one of the device's"),
        (measure(timestamp="yesterday"), "timestamp 'yesterday'"),
        ("{not json", "not JSON"),
    ],
)
def test_an_invalid_measure_gets_400_with_the_reason(sim, tmp_path, body, message):
    p = probe(sim, files_for(sim, tmp_path))
    try:
        assert p.connack_code() == 0
        p.subscribe("ack/" + DEV)
        p.publish("measures/" + DEV, body)
        ack = next_ack(p)
        p.publish("measures/" + DEV, measure())  # the connection lives on
        assert next_ack(p)["code"] == 202
    finally:
        p.close()
    assert ack["code"] == 400 and message in ack["message"], ack
    assert sim.clouds["sap"].measures(DEV)[0]["code"] == 400


def test_ack_knobs_drop_delay_and_force_a_code(sim, tmp_path):
    p = probe(sim, files_for(sim, tmp_path))
    try:
        assert p.connack_code() == 0
        p.subscribe("ack/" + DEV)
        sim.set_knobs(sap_drop_acks=1)
        p.publish("measures/" + DEV, measure(measures=[[1, "C", 1]]))
        p.publish("measures/" + DEV, measure(measures=[[2, "C", 2]]))
        assert next_ack(p)["code"] == 202
        assert p.nothing("ack/" + DEV, 0.3)  # the first one's ack never comes
        sim.set_knobs(sap_ack_delay_s=0.6)
        start = time.monotonic()
        p.publish("measures/" + DEV, measure())
        assert next_ack(p)["code"] == 202
        assert time.monotonic() - start >= 0.5
        sim.set_knobs(sap_ack_delay_s=0, sap_ack_code=503)
        p.publish("measures/" + DEV, measure())
        assert next_ack(p) == {
            "capabilityAlternateId": "env",
            "sensorAlternateId": "s1",
            "code": 503,
            "message": "sap_ack_code knob",
        }
        sim.set_knobs(sap_ack_code=0, mute=["ack"])  # the front's knob works too
        p.publish("measures/" + DEV, measure())
        assert p.nothing("ack/" + DEV, 0.3)
    finally:
        p.close()
    sent = [a["sent"] for a in sim.clouds["sap"].acks(DEV)]
    assert sent == [False, True, True, True, True]  # muted by the front after the plug-in
    assert sim.events(DEV, "ack-dropped")


def _dashboard_command(sim, capability, command):
    req = urllib.request.Request(
        sim.dashboard_url + "api/sap/device/%s/command" % DEV,
        data=json.dumps({"capability": capability, "sensor": "s1", "command": command}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_commands_reach_a_tether_client(sim, tmp_path):
    files = files_for(sim, tmp_path)
    sap = sim.clouds["sap"]
    got = asyncio.Queue()

    async def main():
        ctx = ssl.create_default_context(cafile=str(sim.ca.cert_pem_path))
        ctx.load_cert_chain(files["cert.pem"], files["key.pem"])
        mqtt = MQTTClient(
            DEV,
            "127.0.0.1",
            sim.ports["sap"],
            ssl=ctx,
            server_hostname="localhost",
            keepalive=10,
            on_message=lambda t, p, r, q: got.put_nowait((t, json.loads(bytes(p)))),
        )
        await mqtt.connect()
        assert await mqtt.subscribe("commands/" + DEV, qos=1) == 1
        assert await mqtt.subscribe("ack/" + DEV, qos=1) == 1
        for stolen in ("commands/other", "ack/+", "commands/#", "measures/" + DEV):
            with pytest.raises(MQTTError):
                await mqtt.subscribe(stolen, qos=1)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sap.send_command, DEV, "switch", "s1", CMD)
        first = await asyncio.wait_for(got.get(), 5)
        # the dashboard's route injects one too; a command the model refuses gets a 400
        status = await loop.run_in_executor(None, _dashboard_command, sim, "switch", CMD)
        from_dashboard = await asyncio.wait_for(got.get(), 5)
        bad = await loop.run_in_executor(None, _dashboard_command, sim, "env", CMD)
        await mqtt.publish("measures/other", measure().encode(), qos=1)  # denied, dropped
        await mqtt.publish("measures/" + DEV, measure().encode(), qos=1)
        ack = await asyncio.wait_for(got.get(), 5)
        await mqtt.disconnect()
        return first, ack, (status, from_dashboard, bad)

    first, ack, dashboard = asyncio.run(asyncio.wait_for(main(), 30))
    assert dashboard == (
        200,
        ("commands/" + DEV, {"sensorAlternateId": "s1", "capabilityAlternateId": "switch",
                             "command": CMD}),
        400,
    )  # fmt: skip
    assert first == (
        "commands/" + DEV,
        {"sensorAlternateId": "s1", "capabilityAlternateId": "switch", "command": CMD},
    )
    assert ack[0] == "ack/" + DEV and ack[1]["code"] == 202
    assert len(sap.measures(DEV)) == 1
    assert "publish measures/other (ACL)" in [e["text"] for e in sim.events(DEV, "denied")]
    with pytest.raises(ValueError, match="not a command of sensor"):
        sap.send_command(DEV, "env", "s1", {"temperature": 1.0})
    with pytest.raises(ValueError):
        sap.send_command(DEV, "switch", "s1", {"LED": "maybe"})


def _connack(sim, files, client_id=DEV):
    p = probe(sim, files, client_id)
    try:
        return p.connack_code()
    finally:
        p.close()


def test_wrong_client_id_and_unregistered_certificates(sim, tmp_path):
    files = files_for(sim, tmp_path)
    assert _connack(sim, files, client_id="someone-else") == 2
    refused = sim.wait_event("someone-else", "refused")
    assert "client id 'someone-else' is not the alternate id 'dev-sap-1'" in refused["text"]
    assert "CN=dev-sap-1" in refused["text"]
    # a certificate from the right CA that SAP never issued for a device
    other = sim.ca.device_files("stranger")
    files2 = {"cert.pem": str(other["cert_pem"]), "key.pem": str(other["key_pem"])}
    assert _connack(sim, files2, client_id="stranger") == 5
    assert (
        "CN=stranger,O=Tether test PKI is not registered"
        in sim.wait_event("stranger", "refused")["text"]
    )
    # no certificate at all: a CONNACK with the reason, not a TLS error
    p = MqttProbe(sim, DEV, port_kind="sap")
    try:
        assert p.connack_code() == 5
    finally:
        p.close()
    assert "no client certificate" in sim.events(DEV, "refused")[-1]["text"]
    assert sim.device(DEV, "sap").connects == 0


def _handshake_refused(sim, cert, key):
    """Connect with this certificate; -> the emulator's tls-refused event text."""
    after = sim.last_seq()
    ctx = ssl.create_default_context(cafile=str(sim.ca.cert_pem_path))
    ctx.load_cert_chain(str(cert), str(key))

    async def main():
        mqtt = MQTTClient(
            DEV, "127.0.0.1", sim.ports["sap"], ssl=ctx, server_hostname="localhost",
            connect_timeout_ms=5000,
        )  # fmt: skip
        with pytest.raises((OSError, MQTTError, MQTTConnectError, asyncio.TimeoutError)):
            await mqtt.connect()

    asyncio.run(asyncio.wait_for(main(), 20))
    return sim.wait_event(None, "tls-refused", after=after, timeout=5)["text"]


def test_another_ca_and_an_expired_certificate_fail_the_handshake_with_reasons(sim, tmp_path):
    text = _handshake_refused(
        sim,
        sim.ca.bad_file("client_unknown_ca.crt.pem"),
        sim.ca.bad_file("client_unknown_ca.key.pem"),
    )
    assert "unable to get local issuer certificate" in text and "on sap" in text
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)
    expired = files_for(sim, tmp_path, not_after=past)
    assert "certificate has expired" in _handshake_refused(
        sim, expired["cert.pem"], expired["key.pem"]
    )
    # the same device with a fresh certificate is fine (checked while the probe is still
    # connected: after its close the emulator may already count it as gone)
    p = probe(sim, files_for(sim, tmp_path))
    try:
        assert p.connack_code() == 0
        sim.wait_connected(DEV, timeout=5, cloud="sap")
    finally:
        p.close()


@pytest.mark.parametrize(
    "typ, value, expected",
    [
        ("integer", "42", 42),
        ("integer", 7.0, 7),
        ("long", 2**40, 2**40),
        ("double", "1e300", 1e300),
        ("boolean", "true", True),
        ("boolean", False, False),
        ("string", "x", "x"),
        ("binary", "AAEC", "AAEC"),
        ("date", 1700000000000, 1700000000000),
        ("date", "2024-05-01T10:00:00Z", "2024-05-01T10:00:00Z"),
    ],
)
def test_model_types_accept(typ, value, expected):
    assert model.convert(typ, value) == expected


@pytest.mark.parametrize(
    "typ, value",
    [
        ("integer", True),
        ("integer", 1.5),
        ("long", 2**63),
        ("float", 1e39),
        ("float", float("nan")),
        ("double", "NaN"),
        ("boolean", 1),
        ("string", 5),
        ("binary", "***"),
        ("date", "soon"),
    ],
)
def test_model_types_refuse(typ, value):
    with pytest.raises(ValueError):
        model.convert(typ, value)


def test_model_devices_and_certificates_survive_a_broker_restart(sim, tmp_path):
    files = files_for(sim, tmp_path)
    assert _connack(sim, files) == 0
    sim.restart_broker()  # an outage: every session lost, the cloud's state kept
    p = probe(sim, files)
    try:
        assert p.connack_code() == 0
        p.subscribe("ack/" + DEV)
        p.publish("measures/" + DEV, measure())
        assert next_ack(p)["code"] == 202
    finally:
        p.close()
    assert sim.device(DEV, "sap").connects == 2
