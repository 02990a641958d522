"""The Azure emulator plug-in's DPS and X.509 sides (issue 12 item 3), with Tether's
MQTTClient on CPython: CA-signed and self-signed (thumbprint) certificates on the hub, DPS
registration with a group key (both SAS forms), polling, refusals and error knobs, and the
dashboard's routes.
"""

import json
import time
import urllib.request

import pytest
from azure_emu import KEY, Dev, azure_env, loopback_pair, run, token
from tether import sas
from tether.mqtt import MQTTConnectError, MQTTError

from tools.cloudsim import CloudSim
from tools.cloudsim.plugins.azure import AzurePlugin

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    yield from azure_env(tmp_path_factory)


# -- X.509 ----------------------------------------------------------------------------------


def test_x509_ca_signed_and_self_signed_by_thumbprint(env):
    sim, azure = env
    azure.add_device("x-ca", x509="ca")
    ca_files = sim.device_files("x-ca")
    wrong_cn = sim.device_files("x-someone-else")
    self_files = azure.self_signed_files("x-self")
    azure.add_device("x-self", x509=self_files["cert_pem"].read_bytes())

    async def code(device_id, files, cert="cert_pem", key="key_pem"):
        dev = Dev(sim, azure, device_id, cert=files[cert], key=files[key])
        try:
            await dev.mqtt.connect()
        except MQTTConnectError as exc:
            return exc.code
        await dev.mqtt.disconnect()
        return 0

    async def main():
        assert await code("x-ca", ca_files) == 0
        assert await code("x-ca", wrong_cn) == 5
        assert await code("x-self", self_files) == 0
        assert await code("x-self", ca_files) == 5  # a valid certificate, not its thumbprint
        # a self-signed certificate nobody registered: no trust, no TLS session at all
        with pytest.raises(MQTTError):  # TLS 1.3: the client learns it at CONNACK time
            await code("x-stranger", stranger)

    stranger = azure.self_signed_files("x-stranger")
    run(main())
    sim.registry.wait(lambda: sim.events(kind="tls-refused", cloud="azure"), 5)
    assert not sim.events("x-stranger", "connected")
    assert sim.device("x-self", "azure").auth == "x509-thumbprint"
    assert sim.device("x-ca", "azure").auth == "x509-ca"


# -- DPS ------------------------------------------------------------------------------------


async def _register(dev, reg, polls):
    await dev.mqtt.connect()
    await dev.mqtt.subscribe("$dps/registrations/res/#", qos=1)
    body = json.dumps({"registrationId": reg, "payload": None}).encode()
    await dev.mqtt.publish("$dps/registrations/PUT/iotdps-register/?$rid=1", body, qos=1)
    topics = []
    while True:
        topic, body = await dev.next()
        topics.append(topic)
        reply = json.loads(body)
        if not topic.startswith("$dps/registrations/res/202/"):
            return topics, reply
        assert len(topics) <= polls + 1
        op = reply["operationId"]
        await dev.mqtt.publish(
            "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=%d&operationId=%s"
            % (len(topics) + 1, op),
            b" ",
            qos=1,
        )


def test_dps_group_key_register_polls_then_assigns_the_local_hub(env):
    sim, azure = env
    group = azure.add_group_enrollment("grp-unit")
    key = sas.derive_device_key(group.key, "g-dev-1")
    azure.set_knobs(azure_dps_pending_polls=2, azure_dps_retry_after=3)
    exp = int(time.time()) + 300
    # the SDK omits skn=registration, the docs (and tether.sas) send it: both accepted
    no_skn = sas.sas_token("%s/registrations/g-dev-1" % azure.id_scope, key, exp)

    async def main():
        for password in (sas.dps_token(azure.id_scope, "g-dev-1", key, exp), no_skn):
            dev = Dev(sim, azure, "g-dev-1", password=password, dps=True)
            topics, reply = await _register(dev, "g-dev-1", 2)
            await dev.mqtt.disconnect()
        assert topics[0].startswith("$dps/registrations/res/202/?$rid=1&retry-after=3")
        assert [t.split("/")[3] for t in topics] == ["202", "202", "202", "200"]
        return reply

    try:
        reply = run(main())
    finally:
        azure.set_knobs(azure_dps_pending_polls=1, azure_dps_retry_after=1)
    state = reply["registrationState"]
    assert reply["status"] == "assigned" and state["assignedHub"] == azure.hub_host
    assert state["deviceId"] == "g-dev-1"
    assert azure.device("g-dev-1").key == key  # the hub now knows the derived key

    async def hub():
        dev = Dev(sim, azure, "g-dev-1", password=token(azure, "g-dev-1", key=key))
        await dev.mqtt.connect()
        await dev.mqtt.disconnect()

    run(hub())


def test_dps_self_signed_enrollment_then_the_hub_by_thumbprint(env):
    sim, azure = env
    files = azure.self_signed_files("ss-dev-1")
    azure.add_enrollment("ss-dev-1", x509=files["cert_pem"].read_bytes(), device_id="ss-hub-1")
    other = azure.self_signed_files("ss-dev-2")  # trusted for its own enrollment only
    azure.add_enrollment("ss-dev-2", x509=other["cert_pem"].read_bytes())
    cert = {"cert": files["cert_pem"], "key": files["key_pem"]}

    async def main():
        dev = Dev(sim, azure, "ss-dev-1", dps=True, **cert)
        topics, reply = await _register(dev, "ss-dev-1", 1)
        await dev.mqtt.disconnect()
        assert reply["registrationState"]["deviceId"] == "ss-hub-1"
        hub = Dev(sim, azure, "ss-hub-1", **cert)
        await hub.mqtt.connect()
        await hub.mqtt.disconnect()
        wrong = Dev(sim, azure, "ss-dev-1", dps=True, cert=other["cert_pem"], key=other["key_pem"])
        with pytest.raises(MQTTConnectError) as err:
            await wrong.mqtt.connect()
        assert err.value.code == 5

    run(main())
    assert sim.device("ss-hub-1", "azure").auth == "x509-thumbprint"
    assert azure.registration("ss-dev-1")["auth"] == "x509-thumbprint"


def test_dps_refusals_and_error_knobs(env):
    sim, azure = env
    e = azure.add_enrollment("d-dev-1")
    exp = int(time.time()) + 300

    async def main():
        bad = Dev(
            sim,
            azure,
            "d-dev-1",
            password=sas.dps_token(azure.id_scope, "d-dev-1", KEY, exp),
            dps=True,
        )
        with pytest.raises(MQTTConnectError) as err:
            await bad.mqtt.connect()
        assert err.value.code == 5
        azure.set_knobs(azure_dps_errors=[429])
        dev = Dev(
            sim,
            azure,
            "d-dev-1",
            password=sas.dps_token(azure.id_scope, "d-dev-1", e.key, exp),
            dps=True,
        )
        topics, reply = await _register(dev, "d-dev-1", 1)
        assert topics == ["$dps/registrations/res/429/?$rid=1&retry-after=1"]
        assert reply["errorCode"] == 429001
        body = json.dumps({"registrationId": "someone-else"}).encode()
        await dev.mqtt.publish("$dps/registrations/PUT/iotdps-register/?$rid=2", body, qos=1)
        assert (await dev.next())[0] == "$dps/registrations/res/400/?$rid=2"

    run(main())


def test_dashboard_state_and_injection_routes(tmp_path):
    hub, dps = loopback_pair()
    azure = AzurePlugin(hub_host=hub, dps_host=dps)
    with CloudSim(tmp_path, clouds=[azure]) as sim:
        azure.add_device("dash-1")
        url = sim.dashboard_url

        def post(path, body):
            req = urllib.request.Request(
                url + path.lstrip("/"),
                json.dumps(body).encode(),
                {"Content-Type": "application/json"},
            )
            return json.loads(urllib.request.urlopen(req, timeout=5).read())

        assert post("/api/azure/device/dash-1/c2d", {"body": "x", "properties": {"a": "b"}}) == {
            "id": "c2d-1"
        }
        assert post("/api/azure/device/dash-1/desired", {"rate": 2}) == {"version": 2}
        state = json.loads(urllib.request.urlopen(url + "api/state", timeout=5).read())
        assert state["azure"]["hub"]["host"] == azure.hub_host
        dev = [d for d in state["devices"] if d["id"] == "dash-1"][0]
        assert dev["cloud"] == "azure" and dev["c2d_pending"] == 1
        assert dev["twin"]["desired"] == {"rate": 2, "$version": 2}
