"""A scripted SAP IoT gateway for tests/device/dt_sap_*.py (both interpreters, no network).

    broker = SapBroker()                      # acks every measure with 202
    broker.code = lambda body: 400            # or an error code, or None (no ack)
    client = sap_client(broker)               # a SAPIoTClient wired to it
    broker.command({"capabilityAlternateId": ..., ...})   # a message on commands/dev-1

It records the CONNECT client ids, subscriptions and the measure messages (decoded JSON).
"""

import asyncio
import json

from dt_arduino_wire import parse_publish, parse_subscribe
from dt_creds import CA_DER, CERT_DER, KEY_DER
from scripted_broker import ScriptedBroker, connack, pingresp, puback, publish, suback
from tether.compat import ticks_diff, ticks_ms
from tether.sap import SAPIoTClient

ALT = "dev-1"


def _client_id(pkt):
    i = 1
    while pkt[i] & 0x80:
        i += 1
    b = pkt[i + 1 :]
    n = (b[10] << 8) | b[11]
    return bytes(b[12 : 12 + n]).decode()


class SapBroker:
    def __init__(self):
        self.b = ScriptedBroker()
        self.connack = 0
        self.code = lambda body: 202  # the ack code for a measure; None: no ack
        self.held = []  # acks kept back while `hold` is set
        self.hold = False
        self.ids = []
        self.subs = []
        self.measures = []
        self._pid = 100
        self.task = None

    async def open_connection(self, *args, **kw):
        if self.task is None:  # on the loop that connects (sync mode makes its own)
            self.task = asyncio.create_task(self.serve())
        return await self.b.open_connection(*args, **kw)

    async def serve(self):
        b = self.b
        while True:
            try:
                pkt = await b.recv_packet(600000)
            except AssertionError:
                continue
            kind = pkt[0] >> 4
            if kind == 1:
                self.ids.append(_client_id(pkt))
                b.send(connack(self.connack))
            elif kind == 8:
                pid, topic, qos = parse_subscribe(pkt)
                self.subs.append(topic)
                b.send(suback(pid, qos))
            elif kind == 3:
                topic, qos, pid, body = parse_publish(pkt)
                msg = json.loads(bytes(body))
                self.measures.append((topic, msg))
                if qos:
                    b.send(puback(pid))
                code = self.code(msg)
                if code is not None:
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
            elif kind == 12:
                b.send(pingresp())

    def _down(self, topic, payload):
        self._pid += 1
        if not isinstance(payload, (bytes, bytearray)):
            payload = json.dumps(payload)
        self.b.send(publish(topic, payload, qos=1, pid=self._pid))

    def ack(self, body):
        self._down("ack/" + ALT, body)

    def command(self, body):
        self._down("commands/" + ALT, body)

    def stop(self):
        if self.task is not None:
            self.task.cancel()


async def until(pred, ms):
    t0 = ticks_ms()
    while not pred():
        if ticks_diff(ticks_ms(), t0) > ms:
            return False
        await asyncio.sleep(0.005)
    return True


def sap_client(broker, **kw):
    c = SAPIoTClient(ALT, "gw.test", cert=CERT_DER, key=KEY_DER, ca=CA_DER, **kw)
    c.open_connection = broker.open_connection
    c.session.backoff_min_ms = 10
    c.session.backoff_max_ms = 20
    return c


async def started(broker, **kw):
    c = sap_client(broker, **kw)
    task = asyncio.create_task(c.run())
    await c.wait_connected(3000)
    return c, task


async def stop(client, task, broker):
    client.stop()
    assert await until(task.done, 2000)
    broker.stop()
