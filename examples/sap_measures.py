"""Seed 002 on Tether: send 10 measures to SAP IoT and report each one's ack and latency.

The seed needed three `openssl` commands, paho with loop_start() and sleeps, and printed
whatever came back. Here: convert SAP's bundle once (`python -m tools.sap_cert bundle.pem
--out creds`), then

    python examples/sap_measures.py --host demo.eu10.cp.iot.sap --device <alternate id> \\
        --capability <capability alt id> --sensor <sensor alt id> --property speed \\
        --cert creds/cert.der --key creds/key.der [--ca root.der]

(micropython examples/sap_measures.py ... on the unix port, with MICROPYPATH=lib; there
--ca is required). Each measure waits for its ack; the output is one line per measure:

    measure 1/10 speed=27: ack 202 in 41 ms

and a summary. Exit status 0 when all 10 were acked with 202, 1 otherwise, 2 when the
connection was refused (the message says why and what to do).
"""

import asyncio
import sys

from tether.sap import MeasureRefused, MeasureUnconfirmed, SAPConnectError, SAPIoTClient

_OPTS = {
    "--host": "host", "--port": "port", "--device": "device", "--capability": "capability",
    "--sensor": "sensor", "--property": "property", "--cert": "cert", "--key": "key",
    "--ca": "ca", "--server-hostname": "sni", "--count": "count",
}  # fmt: skip


def options(argv):
    # argparse is not on every MicroPython port: "--name value" pairs are enough here.
    o = {"port": "8883", "property": "speed", "count": "10", "ca": None, "sni": None}
    i = 0
    while i < len(argv):
        name = _OPTS.get(argv[i])
        if name is None or i + 1 >= len(argv):
            raise SystemExit("usage: see the top of examples/sap_measures.py (%s?)" % argv[i])
        o[name] = argv[i + 1]
        i += 2
    for need in ("host", "device", "capability", "sensor", "cert", "key"):
        if need not in o:
            raise SystemExit("--%s is required" % need)
    return o


def _value(i):
    # The seed's random.randint(10, 50), made the same on every interpreter.
    return 10 + (i * 7919) % 41


async def main(o):
    client = SAPIoTClient(
        o["device"], o["host"], int(o["port"]), cert=o["cert"], key=o["key"], ca=o["ca"],
        server_hostname=o["sni"],
    )  # fmt: skip
    task = asyncio.create_task(client.run())
    try:
        await client.wait_connected(30000)
    except SAPConnectError as exc:
        print("connection refused:", exc)
        client.stop()
        return 2
    n = int(o["count"])
    acked = refused = unconfirmed = 0
    for i in range(n):
        v = _value(i)
        head = "measure %d/%d %s=%d:" % (i + 1, n, o["property"], v)
        sample = {o["property"]: v}
        m = client.queue_measures(o["capability"], [sample], o["sensor"])
        try:
            code = await client.wait_ack(m)
            acked += 1
            print(head, "ack %d in %d ms" % (code, m.latency_ms))
        except MeasureRefused as exc:
            refused += 1
            print(head, "refused with code %s (%s) in %d ms" % (exc.code, exc.message,
                                                                 m.latency_ms))  # fmt: skip
        except MeasureUnconfirmed as exc:
            unconfirmed += 1
            print(head, "no ack:", exc.reason)
    print("%d acked, %d refused, %d unconfirmed" % (acked, refused, unconfirmed))
    client.stop()
    for _ in range(100):
        if task.done():
            break
        await asyncio.sleep(0.01)
    return 0 if acked == n else 1


sys.exit(asyncio.run(main(options(sys.argv[1:]))))
