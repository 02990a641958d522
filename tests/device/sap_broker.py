"""A scripted SAP IoT gateway for tests/device/dt_sap_*.py (both interpreters, no network).

    broker = SapBroker()                      # acks every measure with 202
    broker.code = lambda body: 400            # or an error code, or None (no ack)
    client = sap_client(broker)               # a SAPIoTClient wired to it
    broker.command({"capabilityAlternateId": ..., ...})   # a message on commands/dev-1

It records the CONNECT client ids, subscriptions and the measure messages (decoded JSON);
tests/device/cloud_broker.py does the MQTT half.
"""

import asyncio
import json

from cloud_broker import CloudBroker, fast, until
from dt_creds import CA_DER, CERT_DER, KEY_DER
from tether.sap import SAPIoTClient

ALT = "dev-1"


class SapBroker(CloudBroker):
    def __init__(self):
        super().__init__(autostart=True)  # the sync client connects on its own loop
        self.code = lambda body: 202  # the ack code for a measure; None: no ack
        self.held = []  # acks kept back while `hold` is set
        self.hold = False
        self.measures = []

    @property
    def ids(self):
        return [login[0] for login in self.logins]

    def on_publish(self, topic, body):
        msg = json.loads(body)
        self.measures.append((topic, msg))
        code = self.code(msg)
        if code is None:
            return
        ack = {
            "capabilityAlternateId": msg["capabilityAlternateId"],
            "sensorAlternateId": msg["sensorAlternateId"],
            "code": code,
        }
        if code != 202:
            ack["message"] = "refused by the test"
        if self.hold:
            self.held.append(ack)
        else:
            self.ack(ack)

    def ack(self, body):
        self.down("ack/" + ALT, body)

    def command(self, body):
        self.down("commands/" + ALT, body)


def sap_client(broker, **kw):
    c = SAPIoTClient(ALT, "gw.test", cert=CERT_DER, key=KEY_DER, ca=CA_DER, **kw)
    return fast(c, broker)


async def started(broker, **kw):
    c = sap_client(broker, **kw)
    task = asyncio.create_task(c.run())
    await c.wait_connected(3000)
    return c, task


async def stop(client, task, broker):
    client.stop()
    assert await until(task.done, 2000)
    broker.stop()
