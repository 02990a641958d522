"""The baseline every time figure is compared with: a bare MQTT client (paho-mqtt on
CPython) in its own process, doing the same exchanges with the same emulator over the same
transport in the same `make bench` run. It is told its thing id (no discovery), keeps no
state and decodes with cbor2, so it is about the least work a client can do here; a ratio
of 1.0 means Tether on the unix port costs nothing more.

It speaks bench/device_client.py's language: one JSON file argument (device_id, secret,
thing_id, tls, port, ca_pem), `BENCH <name> <json>` lines on stdout with time.time_ns()
stamps, and commands written by the orchestrator to the "ctl" variable ("<seq> local N",
"<seq> tput VARS MS", "<seq> quit"). "echo_in" writes are echoed to "echo_out".
"""

import json
import queue
import ssl
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.cloudsim import codec  # noqa: E402


def emit(name, value):
    print("BENCH %s %s" % (name, json.dumps(value)), flush=True)


class Baseline:
    def __init__(self, cfg):
        self.cfg = cfg
        self.out_topic = "/a/t/%s/e/o" % cfg["thing_id"]
        self.commands = queue.Queue()
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        c = self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cfg["device_id"])
        c.username_pw_set(cfg["device_id"], cfg["secret"])
        if cfg["tls"]:
            c.tls_set(ca_certs=cfg["ca_pem"], cert_reqs=ssl.CERT_REQUIRED)
        c.max_inflight_messages_set(1)  # Tether's pusher has one pack in flight at a time
        c.on_connect = lambda cl, u, f, rc, p: self._connected.set()
        c.on_subscribe = lambda cl, u, mid, codes, p: self._subscribed.set()
        c.on_message = self._on_message

    def _on_message(self, cl, userdata, msg):
        for rec in codec.decode_senml(bytes(msg.payload)):
            if rec["name"] == "echo_in":
                cl.publish(self.out_topic, codec.encode_senml([("echo_out", rec["value"])]), 1)
            elif rec["name"] == "ctl":
                self.commands.put(rec["value"].split()[1:])

    def push(self, values, timeout=10):
        """One SenML pack, QoS 1; returns after the PUBACK."""
        self.client.publish(self.out_topic, codec.encode_senml(values), 1).wait_for_publish(
            timeout
        )

    def run(self):
        c = self.client
        t0 = time.time_ns()
        c.connect("localhost" if self.cfg["tls"] else "127.0.0.1", self.cfg["port"], 30)
        c.loop_start()
        if not self._connected.wait(10):
            return 1
        emit("connected", [t0, time.time_ns()])
        c.subscribe("/a/t/%s/e/i" % self.cfg["thing_id"], 1)
        if not self._subscribed.wait(10):
            return 1
        emit("ready", time.time_ns())
        self.push([("first", 1)])
        while True:
            cmd = self.commands.get(timeout=300)
            if cmd[0] == "quit":
                break
            getattr(self, "do_" + cmd[0])(*[int(a) for a in cmd[1:]])
        c.disconnect()
        c.loop_stop()
        return 0

    def do_local(self, count):
        stamps = []
        for k in range(1, count + 1):
            stamps.append(time.time_ns())
            self.push([("local", k)])
            time.sleep(0.005)
        emit("local", stamps)

    def do_tput(self, nvars, ms):
        # The values change every millisecond (as Tether's on_read does); each pack carries
        # the latest values and goes out once the previous one is acknowledged.
        t0 = time.time_ns()
        start = time.monotonic()
        sent_tick = -1
        packs = 0
        while True:
            tick = int((time.monotonic() - start) * 1000)
            if tick >= ms:
                break
            if tick == sent_tick:
                time.sleep(0.0002)  # nothing changed since the last pack
                continue
            sent_tick = tick
            packs += 1
            self.push([("t%d" % i, tick) for i in range(nvars)])
        reads = ms * nvars
        emit("tput", {"t0": t0, "t1": time.time_ns(), "reads": reads, "pushes": packs})


def main():
    emit("start", time.time_ns())
    with open(sys.argv[1]) as f:
        rc = Baseline(json.load(f)).run()
    emit("exit", rc)
    return rc


if __name__ == "__main__":
    sys.exit(main())
