"""The Azure IoT Hub emulator plug-in (issue 12 item 3), driven by Tether's MQTTClient on
CPython: SAS rules and every hub rule of protocols.md §2.9 a device can observe on the wire.
DPS and X.509: tests/test_azure_emulator_dps.py; the official SDK's run:
tests/test_azure_sdk_fidelity.py.
"""

import asyncio
import json
import time

import pytest
from azure_emu import KEY, Dev, azure_env, run, token
from tether import sas
from tether.mqtt import MQTTConnectError, MQTTError

from tools.cloudsim.plugins.azure import sas_check

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    yield from azure_env(tmp_path_factory)


# -- SAS ------------------------------------------------------------------------------------


def test_sas_check_against_the_documented_vector():
    tok = (
        "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdev1"
        "&sig=i%2BYmMcSSZc4KzBi6ejz3l0iL%2B2sN0CE3q6vSm837h2g%3D&se=1700000000"
    )
    uri = "myhub.azure-devices.net/devices/dev1"
    assert sas_check.check(tok, [KEY], [uri], now=1699999999) == 1700000000
    with pytest.raises(sas_check.SasError, match="expired"):
        sas_check.check(tok, [KEY], [uri], now=1700000000)
    with pytest.raises(sas_check.SasError, match="signature"):
        sas_check.check(tok.replace("se=17", "se=18"), [KEY], [uri], now=0)
    with pytest.raises(sas_check.SasError, match="skn"):
        sas_check.check(tok + "&skn=iothubowner", [KEY], [uri], now=0)
    group = (
        "8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw=="
    )
    derived = sas_check.derive_key(group, "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6")
    assert derived == "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc="


def test_sas_connect_and_every_refusal(env):
    sim, azure = env
    azure.add_device("sas-1", key=KEY)
    other = azure.add_device("sas-other").key

    async def code(**kw):
        dev = Dev(sim, azure, "sas-1", **kw)
        try:
            await dev.mqtt.connect()
        except MQTTConnectError as exc:
            return exc.code
        await dev.mqtt.disconnect()
        return 0

    async def main():
        assert await code(password=token(azure, "sas-1")) == 0
        # the hub's name (gateway_hostname style) is accepted too
        host = azure.hub_name
        user = "%s/sas-1/?api-version=2021-04-12" % host
        assert await code(password=token(azure, "sas-1", host=host), user=user) == 0
        assert await code(password=token(azure, "sas-1", key=other)) == 5
        assert await code(password=token(azure, "sas-1", ttl=-5)) == 5
        assert await code(password=token(azure, "sas-other")) == 5  # sr names another device
        policy = sas.sas_token(
            "%s/devices/sas-1" % azure.hub_host, KEY, int(time.time()) + 60, policy="device"
        )
        assert await code(password=policy) == 5  # skn: a policy key, not a device key
        assert await code(password=token(azure, "sas-1"), client_id="sas-x") == 2
        assert await code(password=token(azure, "sas-1"), user="sas-1") == 4
        assert await code(password=None) == 5

    run(main())
    reasons = [e["text"] for e in sim.events("sas-1", "refused")]
    assert any("signature does not match" in r for r in reasons)
    assert any("expired" in r for r in reasons)
    assert any("names another resource" in r for r in reasons)
    assert KEY not in json.dumps(sim.events())


def test_the_hub_disconnects_at_the_token_expiry(env):
    sim, azure = env
    azure.add_device("exp-1", key=KEY)

    async def main():
        expiry = int(time.time()) + 2
        password = sas.hub_token(azure.hub_host, "exp-1", KEY, expiry=expiry)
        dev = Dev(sim, azure, "exp-1", password=password)
        await dev.mqtt.connect()
        assert dev.mqtt.connected
        while dev.mqtt.connected and time.time() < expiry + 4:
            await asyncio.sleep(0.05)
        assert not dev.mqtt.connected
        return time.time(), expiry

    closed, expiry = run(main())
    assert closed >= expiry  # not before se (wall clock: se is wall-clock time)
    assert sim.events("exp-1", "expired")
    assert not sim.events("exp-1", "refused")


# -- hub topics -----------------------------------------------------------------------------


def test_telemetry_bags_in_both_forms_and_qos_rules(env):
    sim, azure = env
    azure.add_device("tel-1", key=KEY)

    async def main():
        dev = Dev(sim, azure, "tel-1", password=token(azure, "tel-1"))
        await dev.mqtt.connect()
        base = "devices/tel-1/messages/events/"
        await dev.mqtt.publish(base + "%24.mid=a&%24.ct=application%2Fjson&k=v%20w", b"1", qos=1)
        await dev.mqtt.publish(base + "$.mid=b&$.ce=utf-8&flag&empty=", b"2", qos=1)
        await dev.mqtt.publish(base, b"3", qos=1, retain=True)
        # SUBSCRIBE QoS 2 is granted 1; a sixth filter is refused
        assert await dev.mqtt.subscribe("$iothub/twin/res/#", qos=2) == 1
        for t in (
            "$iothub/methods/POST/#",
            "$iothub/twin/PATCH/properties/desired/#",
            "devices/tel-1/messages/devicebound/#",
            "devices/tel-1/messages/devicebound/+",
        ):
            await dev.mqtt.subscribe(t, qos=1)
        with pytest.raises(MQTTError):
            await dev.mqtt.subscribe("devices/tel-1/messages/devicebound/x", qos=1)
        with pytest.raises(MQTTError):  # outside the hub's topics
            await dev.mqtt.subscribe("devices/other/messages/devicebound/#", qos=1)
        # QoS 2 publish: the hub closes the connection and keeps nothing
        try:
            await dev.mqtt.publish(base + "x=qos2", b"4", qos=2, timeout_ms=3000)
        except MQTTError:
            pass
        t0 = time.monotonic()
        while dev.mqtt.connected and time.monotonic() - t0 < 3:
            await asyncio.sleep(0.05)
        assert not dev.mqtt.connected

    run(main())
    got = azure.telemetry("tel-1")
    assert [m["body"] for m in got] == [b"1", b"2", b"3"]
    assert got[0]["properties"] == {"$.mid": "a", "$.ct": "application/json", "k": "v w"}
    assert got[1]["properties"] == {"$.mid": "b", "$.ce": "utf-8", "flag": None, "empty": ""}
    assert got[2]["properties"] == {"mqtt-retain": "true"}
    assert sim.events("tel-1", "refused")[-1]["text"].startswith("QoS 2 publish")


def test_twin_get_patch_desired_and_error_knobs(env):
    sim, azure = env
    azure.add_device("twin-1", key=KEY)

    async def main():
        dev = Dev(sim, azure, "twin-1", password=token(azure, "twin-1"))
        await dev.mqtt.connect()
        await dev.mqtt.subscribe("$iothub/twin/res/#", qos=1)
        await dev.mqtt.subscribe("$iothub/twin/PATCH/properties/desired/#", qos=1)
        await dev.mqtt.publish("$iothub/twin/GET/?$rid=1", b" ", qos=1)
        topic, body = await dev.next()
        assert topic == "$iothub/twin/res/200/?$rid=1"
        assert json.loads(body) == {"desired": {"$version": 1}, "reported": {"$version": 1}}
        patch = b'{"a": {"b": 1, "c": 2}, "d": 3}'
        await dev.mqtt.publish("$iothub/twin/PATCH/properties/reported/?$rid=2", patch, qos=1)
        assert await dev.next() == ("$iothub/twin/res/204/?$rid=2&$version=2", b"")
        patch = b'{"a": {"c": null}, "d": null}'
        await dev.mqtt.publish("$iothub/twin/PATCH/properties/reported/?$rid=3", patch, qos=1)
        assert await dev.next() == ("$iothub/twin/res/204/?$rid=3&$version=3", b"")
        await dev.mqtt.publish("$iothub/twin/PATCH/properties/reported/?$rid=4", b"{x", qos=1)
        assert (await dev.next())[0] == "$iothub/twin/res/400/?$rid=4"
        azure.set_knobs(azure_twin_errors=[429, 500])
        await dev.mqtt.publish("$iothub/twin/GET/?$rid=5", b" ", qos=1)
        assert (await dev.next())[0] == "$iothub/twin/res/429/?$rid=5"
        await dev.mqtt.publish("$iothub/twin/PATCH/properties/reported/?$rid=6", b"{}", qos=1)
        assert (await dev.next())[0] == "$iothub/twin/res/500/?$rid=6"
        await dev.mqtt.publish("$iothub/twin/GET/?$rid=7", b" ", qos=1)
        topic, body = await dev.next()
        assert topic == "$iothub/twin/res/200/?$rid=7"
        assert json.loads(body)["reported"] == {"a": {"b": 1}, "$version": 3}
        v = await asyncio.get_running_loop().run_in_executor(
            None, azure.set_desired, "twin-1", {"rate": 5}
        )
        topic, body = await dev.next()
        assert topic == "$iothub/twin/PATCH/properties/desired/?$version=%d" % v
        assert json.loads(body) == {"rate": 5, "$version": v}
        await dev.mqtt.disconnect()

    run(main())
    assert azure.twin("twin-1")["desired"] == {"rate": 5, "$version": 2}


def test_a_twin_reply_goes_only_to_the_connection_that_asked(env):
    sim, azure = env
    azure.add_device("iso-1", key=KEY)
    azure.add_device("iso-2", key=KEY)

    async def main():
        one = Dev(sim, azure, "iso-1", password=token(azure, "iso-1"))
        two = Dev(sim, azure, "iso-2", password=token(azure, "iso-2"))
        for d in (one, two):
            await d.mqtt.connect()
            await d.mqtt.subscribe("$iothub/twin/res/#", qos=1)
        await one.mqtt.publish("$iothub/twin/GET/?$rid=9", b" ", qos=1)
        assert (await one.next())[0] == "$iothub/twin/res/200/?$rid=9"
        with pytest.raises(asyncio.TimeoutError):
            await two.next(timeout=0.5)

    run(main())


def test_direct_method_round_trip_timeout_and_offline(env):
    sim, azure = env
    azure.add_device("meth-1", key=KEY)
    with pytest.raises(LookupError):
        azure.invoke_method("meth-1", "x", None, timeout_s=1)

    async def main():
        dev = Dev(sim, azure, "meth-1", password=token(azure, "meth-1"))
        await dev.mqtt.connect()
        await dev.mqtt.subscribe("$iothub/methods/POST/#", qos=1)
        loop = asyncio.get_running_loop()
        call = loop.run_in_executor(None, azure.invoke_method, "meth-1", "blink", {"n": 2}, 5)
        topic, body = await dev.next()
        assert topic.startswith("$iothub/methods/POST/blink/?$rid=")
        assert json.loads(body) == {"n": 2}
        rid = topic.split("$rid=")[1]
        await dev.mqtt.publish("$iothub/methods/res/201/?$rid=%s" % rid, b'{"ok": 1}', qos=1)
        assert await call == (201, {"ok": 1})
        late = loop.run_in_executor(None, azure.invoke_method, "meth-1", "slow", None, 0.5)
        topic, body = await dev.next()
        assert body == b""  # no payload: an empty body
        with pytest.raises(asyncio.TimeoutError):
            await late

    run(main())


def test_c2d_is_queued_for_an_offline_device_and_delivered_in_order(env):
    sim, azure = env
    azure.add_device("c2d-1", key=KEY)
    azure.send_c2d("c2d-1", "before any connect", {"k": "1"})

    async def main():
        dev = Dev(sim, azure, "c2d-1", password=token(azure, "c2d-1"), clean_session=False)
        await dev.mqtt.connect()
        await dev.mqtt.subscribe("devices/c2d-1/messages/devicebound/#", qos=1)
        topic, body = await dev.next()
        assert body == b"before any connect"
        assert topic.startswith("devices/c2d-1/messages/devicebound/%24.mid=c2d-1&")
        await dev.mqtt.disconnect()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sim.wait_connected, "c2d-1", False, 5, "azure")
        for i in range(2):
            await loop.run_in_executor(
                None, azure.send_c2d, "c2d-1", "offline %d" % i, {"$.ct": "text/plain"}
            )
        assert [m["state"] for m in azure.c2d("c2d-1")] == ["completed", "queued", "queued"]
        dev = Dev(sim, azure, "c2d-1", password=token(azure, "c2d-1"), clean_session=False)
        await dev.mqtt.connect()  # persistent session: no SUBSCRIBE needed
        got = [await dev.next(), await dev.next()]
        assert [b for _, b in got] == [b"offline 0", b"offline 1"]
        assert "%24.ct=text%2Fplain" in got[0][0]
        await loop.run_in_executor(None, azure.send_c2d, "c2d-1", "lit", {"$.ct": "a/b"}, True)
        topic, _ = await dev.next()
        assert "/$.mid=c2d-4&$.to=" in topic and "$.ct=a%2Fb" in topic
        await dev.mqtt.disconnect()

    run(main())
    assert [m["state"] for m in azure.wait_c2d_completed("c2d-1", 4)] == ["completed"] * 4


def test_one_connection_per_device(env):
    sim, azure = env
    azure.add_device("one-1", key=KEY)

    async def main():
        first = Dev(sim, azure, "one-1", password=token(azure, "one-1"))
        await first.mqtt.connect()
        second = Dev(sim, azure, "one-1", password=token(azure, "one-1"))
        await second.mqtt.connect()
        t0 = time.monotonic()
        while first.mqtt.connected and time.monotonic() - t0 < 3:
            await asyncio.sleep(0.05)
        assert not first.mqtt.connected and second.mqtt.connected
        await second.mqtt.disconnect()

    run(main())


def test_a_twin_get_before_subscribing_is_answered_unless_strict(env):
    # The SDK may GET right after CONNACK, before its SUBSCRIBE (protocols.md §2.11): the
    # reply reaches the asking connection anyway, unless the knob asks for the documented
    # (strict) behaviour.
    sim, azure = env
    azure.add_device("early-1", key=KEY)

    async def main():
        dev = Dev(sim, azure, "early-1", password=token(azure, "early-1"))
        await dev.mqtt.connect()
        await dev.mqtt.publish("$iothub/twin/GET/?$rid=1", b" ", qos=1)
        assert (await dev.next())[0] == "$iothub/twin/res/200/?$rid=1"
        azure.set_knobs(azure_twin_reply_unsubscribed=False)
        try:
            await dev.mqtt.publish("$iothub/twin/GET/?$rid=2", b" ", qos=1)
            with pytest.raises(asyncio.TimeoutError):
                await dev.next(timeout=0.5)
        finally:
            azure.set_knobs(azure_twin_reply_unsubscribed=True)
        await dev.mqtt.disconnect()

    run(main())
    assert sim.events("early-1", "unsent")
