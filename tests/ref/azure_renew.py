"""SAS renewal as azure-iot-device 2.14 does it (protocols.md §2.11): at `se - 120 s` the SDK
disconnects and connects again with a fresh token.

    python tests/ref/azure_renew.py '{"hub", "device_id", "key", "ca_file", "ttl_s", "count"}'

Sends `count` telemetry messages ("m0", "m1", ...) one per second with a token TTL of
`ttl_s` (a little over 120 s, so the renewal comes within seconds); prints
{"step": "connected"} and {"step": "done"}.
"""

import asyncio
import json
import logging
import sys

from azure.iot.device.aio import IoTHubDeviceClient


async def main(cfg):
    client = IoTHubDeviceClient.create_from_symmetric_key(
        symmetric_key=cfg["key"],
        hostname=cfg["hub"],
        device_id=cfg["device_id"],
        server_verification_cert=open(cfg["ca_file"]).read(),
        sastoken_ttl=cfg["ttl_s"],
    )
    await client.connect()
    print(json.dumps({"step": "connected"}), flush=True)
    for i in range(cfg["count"]):
        await client.send_message("m%d" % i)
        await asyncio.sleep(1)
    await client.shutdown()
    print(json.dumps({"step": "done"}), flush=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    asyncio.run(main(json.loads(sys.argv[1])))
