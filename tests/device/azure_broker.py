"""A scripted IoT Hub / DPS for the Azure device tests (both interpreters; no sockets, no TLS).

Plays the broker for one client over tests/device/scripted_broker.py: records every
CONNECT (client id, username, password, CleanSession flag), SUBSCRIBE and PUBLISH, answers
CONNACK, SUBACK, PUBACK, PINGRESP. Twin requests are answered from `twin` (a dict) unless
`twin_status` holds statuses to answer with first; method responses are collected in
`responses` (rid -> (status, body)); `unacked` leaves the next telemetry PUBLISHes
without a PUBACK. tests/test_azure_client.py runs the real client
against the emulator; these tests pin the wire bytes and the hostile cases.
"""

import json

from akenza_broker import parse_connect, parse_publish, parse_subscribe, until  # noqa: F401
from scripted_broker import ScriptedBroker, connack, pingresp, puback, publish, suback

KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  # protocols.md §2.2's test key


def params_of(topic):
    out = {}
    q = topic[topic.find("?") + 1 :]
    for kv in q.split("&"):
        k, _, v = kv.partition("=")
        out[k] = v
    return out


class AzureBroker:
    def __init__(self):
        self.b = ScriptedBroker()
        self.open_connection = self.b.open_connection
        self.logins = []  # (client_id, user, password, clean) per CONNECT
        self.up = []  # (topic, payload) of every PUBLISH from the device
        self.subs = []
        self.twin = {"desired": {"$version": 1}, "reported": {"$version": 1}}
        self.twin_status = []  # statuses to answer the next twin requests with
        self.twin_auto = True
        self.responses = {}  # method rid -> (status, body)
        self.refuse = 0
        self.unacked = 0  # the next N telemetry PUBLISHes get no PUBACK
        self._pid = 100

    async def serve(self):
        b = self.b
        while True:
            try:
                pkt = await b.recv_packet(600000)
            except AssertionError:
                continue
            kind = pkt[0] >> 4
            if kind == 1:
                i = 1
                while pkt[i] & 0x80:
                    i += 1
                clean = bool(pkt[i + 1 + 7] & 0x02)
                self.logins.append(parse_connect(pkt) + (clean,))
                b.send(connack(self.refuse))
                if self.refuse:
                    b.send_eof()
            elif kind == 8:
                pid, topic, qos = parse_subscribe(pkt)
                self.subs.append(topic)
                b.send(suback(pid, min(qos, 1)))
            elif kind == 3:
                topic, qos, pid, body = parse_publish(pkt)
                body = bytes(body)
                self.up.append((topic, body))
                if self.unacked and topic.startswith("devices/"):
                    self.unacked -= 1
                    continue  # in flight until the test cuts the connection (b.send_eof())
                if qos:
                    b.send(puback(pid))
                self._answer(topic, body)
            elif kind == 12:
                b.send(pingresp())

    def _answer(self, topic, body):
        if topic.startswith("$iothub/methods/res/"):
            status = int(topic.split("/")[3])
            self.responses[params_of(topic)["$rid"]] = (status, body)
            return
        if not topic.startswith("$iothub/twin/") or not self.twin_auto:
            return
        rid = params_of(topic)["$rid"]
        if self.twin_status:
            self.down("$iothub/twin/res/%d/?$rid=%s" % (self.twin_status.pop(0), rid), b"")
        elif topic.startswith("$iothub/twin/GET/"):
            self.down("$iothub/twin/res/200/?$rid=" + rid, json.dumps(self.twin))
        else:
            rep = self.twin["reported"]
            rep.update(json.loads(body))
            rep["$version"] += 1
            self.down("$iothub/twin/res/204/?$rid=%s&$version=%d" % (rid, rep["$version"]), b"")

    def down(self, topic, payload, qos=1):
        if isinstance(payload, str):
            payload = payload.encode()
        self._pid += 1
        self.b.send(publish(topic, payload, qos=qos, pid=self._pid if qos else 0))

    def ups(self, prefix):
        return [(t, p) for t, p in self.up if t.startswith(prefix)]


def hub_client(broker, **kw):
    from tether.azure.aio import IoTHubDeviceClient

    c = IoTHubDeviceClient.create_from_symmetric_key(KEY, "myhub.azure-devices.net", "dev1", **kw)
    c.tls = False
    c.open_connection = broker.open_connection
    c.session.backoff_min_ms = 10
    c.session.backoff_max_ms = 20
    return c
