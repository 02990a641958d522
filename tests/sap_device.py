"""A SAP IoT device for tests/test_sap_client.py, run as a process on CPython or the unix port.

    python tests/sap_device.py CONFIG.json   # {"mode": "acks", "port": ..., "alt": ...,
                                             #  "cert": ..., "key": ..., "ca": ...}

(A file, not the JSON itself: the unix port 1.29 preview dies with "FATAL: uncaught NLR"
on a command-line argument of 256 characters or more.)

Prints one JSON object per line (what the test reads); "ready" once connected where the
test has to act. Modes: connect (wait_connected: ok or the error), acks (a measure whose ack
the emulator drops, one per sample form, one the model refuses), commands (print each
command until `count` came, then the counters), measure (one, and its result), outage (3
measures, "cut" -> wait for the test to cut the link, 5 measures queued offline, "queued"
-> their results after it).
"""

import asyncio
import json
import sys

import tether.sap as sap  # the error classes are looked up when one is raised (lazy)
from tether import log
from tether.sap import SAPIoTClient


def out(**kw):
    print(json.dumps(kw))


def client_for(cfg, **kw):
    return SAPIoTClient(
        cfg["alt"],
        cfg.get("host", "127.0.0.1"),
        cfg["port"],
        cert=cfg["cert"],
        key=cfg["key"],
        ca=cfg["ca"],
        server_hostname="localhost",
        ack_timeout_ms=cfg.get("ack_timeout_ms", 5000),
        **kw,
    )


async def result(aw):
    try:
        return {"code": await aw}
    except sap.MeasureRefused as exc:
        return {"refused": exc.code, "message": exc.message}
    except sap.MeasureUnconfirmed as exc:
        return {"unconfirmed": exc.reason}


async def until(pred, ms):
    for _ in range(ms // 10):
        if pred():
            return True
        await asyncio.sleep(0.01)
    return pred()


async def main(cfg):
    mode = cfg["mode"]
    got = []

    def on_command(client, cap, sensor, cmd):
        got.append(1)
        out(command=[cap, sensor, cmd])

    c = client_for(cfg, on_command=on_command)
    c.session.backoff_min_ms = 200
    c.session.backoff_max_ms = 400
    task = asyncio.create_task(c.run())
    try:
        await c.wait_connected(cfg.get("timeout_ms", 10000))
    except sap.SAPConnectError as exc:
        out(error=str(exc), code=exc.code, permanent=exc.permanent)
        c.stop()
        return
    out(ready=True)
    if mode == "acks":
        s = cfg.get("sensor", "s1")
        out(r=await result(c.send_measures("env", [[20.0, "C"]], sensor_alternate_id=s)))
        out(r=await result(c.send_measures("env", [[21.5, "C"], [22, "C"]], s)))
        out(r=await result(c.send_measures("env", [{"temperature": 23.25}], s)))
        out(r=await result(c.send_measures("env", [["warm", "C"]], s)))
        m = c.queue_measures("env", [{"unit": "K"}], s, timestamp=1700000000000)
        out(r=await result(c.wait_ack(m)), latency=m.latency_ms is not None)
    elif mode == "measure":
        out(r=await result(c.send_measures("env", [[20.5, "C"]], "s1")))
    elif mode == "commands":
        await until(lambda: len(got) >= cfg["count"], cfg.get("wait_ms", 10000))
    elif mode == "outage":
        for i in range(3):
            out(r=await result(c.send_measures("env", [[i, "C"]], "s1")))
        out(cut=True)
        await until(lambda: not c.connected, 10000)
        pending = [c.queue_measures("env", [[100 + i, "C"]], "s1") for i in range(5)]
        out(queued=[m.state for m in pending])
        for m in pending:
            out(r=await result(c.wait_ack(m)))
    st = c.stats()
    mods = sorted(k for k in sys.modules if k.startswith("tether"))
    out(stats=dict((k, st[k]) for k in st if not k.startswith("mqtt_")), up=c.connected, mods=mods)
    c.stop()
    await until(task.done, 2000)


if __name__ == "__main__":  # pytest may collect this file (tests/*sap*): nothing runs then
    with open(sys.argv[1]) as f:
        CFG = json.load(f)
    log.setLevel(log.DEBUG if CFG.get("debug") else log.WARNING)
    asyncio.run(main(CFG))
