"""Seed 001 on Tether: one uplink to akenza, its JWT signed here (CPython or MicroPython).

    python examples/akenza_uplink.py DEVICE_ID ec_private.der
    micropython examples/akenza_uplink.py DEVICE_ID ec_private.der mqtt.akenza.io 8883 ca.der

The key (from `python -m tools.akenza_keys DEVICE_ID`) decides ES256 or RS256. Optional:
host, port, the broker's root CA (a board has no system store) and the TLS host name
(the local emulator: 127.0.0.1 PORT ca.crt.pem localhost).
"""

import asyncio
import sys

from tether.akenza import AkenzaClient

args = sys.argv[1:] + [None] * 6
device_id, key, host, port, ca, hostname = args[:6]


async def main():
    port_ = int(port) if port else None
    client = AkenzaClient(device_id, key=key, host=host or "mqtt.akenza.io", port=port_, ca=ca,
                          server_hostname=hostname)  # fmt: skip
    run = asyncio.create_task(client.run())
    await client.publish({"temperature": 22})
    done = await client.flush(30000)  # True once akenza acknowledged it (PUBACK)
    client.stop()
    await run
    print("uplink delivered" if done else "not delivered: %r" % client.session.last_error)
    return done


sys.exit(0 if asyncio.run(main()) else 1)
