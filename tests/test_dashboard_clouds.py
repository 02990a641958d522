"""The dashboard's per-cloud panels (static/clouds.js) in a real browser (Debian chromium +
chromedriver, driven by selenium): for Azure, akenza, SAP and Astarte, what is typed into a
device card's form must reach a paho client standing in for the device, through the
plug-in's JSON route, and what the device sent must show on the card."""

import json
import queue
import ssl
import time

import bson
import paho.mqtt.client as mqtt
import pytest
from azure_emu import KEY, loopback_pair, token
from cloudsim_fixtures import MqttProbe
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait
from test_akenza_emulator import token_for
from test_astarte_emulator import DEV_ID as ASTARTE_DEV
from test_astarte_emulator import IFACES, SRV_PROPS, STRICT, connected_device
from test_dashboard_browser import browser  # noqa: F401
from test_sap_emulator import files_for

from tools import akenza_keys
from tools.cloudsim import CloudSim
from tools.cloudsim.plugins.azure import AzurePlugin

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def sim(tmp_path):
    hub, dps = loopback_pair()
    s = CloudSim(
        tmp_path / "cs",
        clouds=[AzurePlugin(hub_host=hub, dps_host=dps), "akenza", "sap", "astarte"],
    ).start()
    try:
        yield s
    finally:
        s.stop()


def _open(browser, sim, device, cloud):  # noqa: F811
    browser.get(sim.dashboard_url)
    sel = '[data-device="%s"][data-cloud="%s"]' % (device, cloud)
    wait = WebDriverWait(browser, 15)
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, sel + '[data-connected="1"]')))
    return sel, wait


def _fill(browser, sel, action, **fields):  # noqa: F811
    form = browser.find_element(By.CSS_SELECTOR, sel + ' form[data-action="%s"]' % action)
    for name, value in fields.items():
        box = form.find_element(By.CSS_SELECTOR, '[data-field="%s"]' % name)
        box.clear()
        box.send_keys(value)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    return form.find_element(By.CSS_SELECTOR, '[data-result="%s"]' % action)


def _result(wait, element):
    wait.until(lambda d: element.text not in ("", "…"))
    return element.text


def _sent_contains(wait, browser, sel, cloud, text):  # noqa: F811
    box = browser.find_element(By.CSS_SELECTOR, sel + ' [data-sent="%s"]' % cloud)
    wait.until(lambda d: text in box.text)


class AzureDevice:
    """paho on the hub listener with a SAS token; answers direct methods with 200."""

    def __init__(self, sim, azure, device_id):
        self.messages = queue.Queue()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=device_id)
        user = "%s/%s/?api-version=2021-04-12" % (azure.hub_host, device_id)
        self.client.username_pw_set(user, token(azure, device_id))
        self.client.tls_set(ca_certs=str(sim.ca.cert_pem_path), cert_reqs=ssl.CERT_REQUIRED)
        self.client.on_message = self._message
        connected = queue.Queue()
        self.client.on_connect = lambda c, u, f, rc, p: connected.put(rc)
        self.client.connect(azure.hub_host, azure.port, keepalive=30)
        self.client.loop_start()
        assert not connected.get(timeout=10).is_failure
        for topic in ("devices/%s/messages/devicebound/#" % device_id, "$iothub/methods/POST/#"):
            self.client.subscribe(topic, 1)

    def _message(self, client, userdata, m):
        if m.topic.startswith("$iothub/methods/POST/"):
            rid = m.topic.split("$rid=")[1]
            reply = {"method": m.topic.split("/")[3], "got": json.loads(m.payload or b"null")}
            client.publish("$iothub/methods/res/200/?$rid=%s" % rid, json.dumps(reply), 1)
        else:
            self.messages.put((m.topic, bytes(m.payload)))

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def test_azure_c2d_and_method_from_the_page(sim, browser):  # noqa: F811
    azure = sim.clouds["azure"]
    azure.add_device("az-1", key=KEY)
    dev = AzureDevice(sim, azure, "az-1")
    try:
        dev.client.publish("devices/az-1/messages/events/", b'{"t": 21.5}', 1).wait_for_publish(5)
        sel, wait = _open(browser, sim, "az-1", "azure")
        _sent_contains(wait, browser, sel, "azure", "21.5")  # the last telemetry on the card
        result = _fill(browser, sel, "azure-c2d", body="lamp on", properties='{"k": "v"}')
        topic, body = dev.messages.get(timeout=10)
        assert body == b"lamp on"
        assert topic.startswith("devices/az-1/messages/devicebound/") and "k=v" in topic
        mid = json.loads(_result(wait, result))["id"]  # the message id the route returned
        assert "%%24.mid=%s&" % mid in topic
        result = _fill(browser, sel, "azure-method", name="blink", payload='{"n": 2}')
        answer = json.loads(_result(wait, result))
        assert answer == {"status": 200, "payload": {"method": "blink", "got": {"n": 2}}}
        result = _fill(browser, sel, "azure-desired", patch='{"interval": 5}')
        assert "version" in _result(wait, result)
        assert azure.twin("az-1")["desired"]["interval"] == 5
    finally:
        dev.close()


def test_akenza_downlink_from_the_page(sim, browser, tmp_path):  # noqa: F811
    keys = akenza_keys.make_keys(str(tmp_path / "k"), "ak-1", "ES256")
    akenza = sim.clouds["akenza"]
    akenza.add_device("ak-1", open(keys["public_pem"]).read())
    probe = MqttProbe(sim, "ak-1", "unused", token_for(keys, "ak-1"), port_kind="akenza")
    try:
        assert probe.connack_code() == 0
        assert probe.subscribe("/down/device/id/ak-1/#") == 1
        probe.publish("/up/device/id/ak-1/env", b'{"t": 19.25}')
        sel, wait = _open(browser, sim, "ak-1", "akenza")
        _sent_contains(wait, browser, sel, "akenza", "19.25")
        result = _fill(browser, sel, "akenza-downlink", topic="config", data='{"every": 60}')
        assert probe.next("/down/device/id/ak-1/config", 10)[1] == b'{"every": 60}'
        assert "/down/device/id/ak-1/config" in _result(wait, result)
        # bad JSON never leaves the page
        result = _fill(browser, sel, "akenza-downlink", data="{nope")
        assert _result(wait, result).startswith("bad JSON")
        assert akenza.device("ak-1").downlinks == [("config", b'{"every": 60}')]
    finally:
        probe.close()


def test_sap_command_from_the_page(sim, browser, tmp_path):  # noqa: F811
    sap = sim.clouds["sap"]
    sap.add_capability("env", [("temperature", "float")])
    sap.add_capability("switch", [("LED", "boolean")])
    sap.add_device("sap-1", sensors={"s1": {"measures": ["env"], "commands": ["switch"]}})
    files = files_for(sim, tmp_path, "sap-1")
    probe = MqttProbe(sim, "sap-1", port_kind="sap", cert=(files["cert.pem"], files["key.pem"]))
    try:
        assert probe.connack_code() == 0
        probe.subscribe("commands/sap-1")
        body = {"capabilityAlternateId": "env", "sensorAlternateId": "s1", "measures": [[22.75]]}
        probe.publish("measures/sap-1", json.dumps(body))
        sel, wait = _open(browser, sim, "sap-1", "sap")
        _sent_contains(wait, browser, sel, "sap", "22.75")
        _fill(
            browser, sel, "sap-command", capability="switch", sensor="s1", command='{"LED": true}'
        )
        got = json.loads(probe.next("commands/sap-1", 10)[1])
        assert got["command"] == {"LED": True} and got["capabilityAlternateId"] == "switch"
        # a command the model refuses shows the route's 400 in the form
        result = _fill(browser, sel, "sap-command", command='{"LED": 3}')
        assert "400" in _result(wait, result)
    finally:
        probe.close()


def test_astarte_server_property_from_the_page(sim, browser, tmp_path):  # noqa: F811
    astarte = sim.clouds["astarte"]
    astarte.add_interfaces_dir(IFACES)
    astarte.add_interface(STRICT)
    dev = connected_device(sim, tmp_path)
    try:
        assert dev.subscribe("%s/%s/#" % (dev.base, SRV_PROPS), qos=2) == 2
        sel, wait = _open(browser, sim, ASTARTE_DEV, "astarte")
        result = _fill(
            browser, sel, "astarte-property", interface=SRV_PROPS, path="/threshold", value="4"
        )
        topic, payload = dev.next(timeout=10)
        assert topic == "%s/%s/threshold" % (dev.base, SRV_PROPS)
        assert bson.decode(payload) == {"v": 4.0}
        assert json.loads(_result(wait, result)) == {"sent": True}
        _sent_contains(wait, browser, sel, "astarte", SRV_PROPS + "/threshold")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not astarte_state(sim):
            time.sleep(0.05)
        assert astarte_state(sim) == {SRV_PROPS + "/threshold": 4.0}
    finally:
        dev.close()


def astarte_state(sim):
    import urllib.request

    with urllib.request.urlopen(sim.dashboard_url + "api/state", timeout=5) as r:
        return json.loads(r.read())["astarte"]["devices"][ASTARTE_DEV]["server_properties"]
