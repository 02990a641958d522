"""Desired-property reconciliation across a reconnect, as azure-iot-device 2.14 does it.

    python tests/ref/azure_reconnect.py '{"hub", "device_id", "key", "ca_file"}'

The desired handler is set before connect (the common usage). The SDK then GETs the twin
after CONNACK and hands the whole desired document to the handler, and does so again
after every reconnect when `$version` changed. Prints {"step": "desired", "patch": ...}
per handler call, {"step": "connected"} once connected, and {"step": "done"} after two.
"""

import asyncio
import json
import logging
import queue
import sys
import time

from azure.iot.device.aio import IoTHubDeviceClient


def out(step, **data):
    print(json.dumps(dict(step=step, **data), sort_keys=True), flush=True)


async def main(cfg):
    client = IoTHubDeviceClient.create_from_symmetric_key(
        symmetric_key=cfg["key"],
        hostname=cfg["hub"],
        device_id=cfg["device_id"],
        server_verification_cert=open(cfg["ca_file"]).read(),
    )
    got = queue.Queue()
    client.on_twin_desired_properties_patch_received = got.put
    await client.connect()
    out("connected")
    deadline = time.monotonic() + 20
    seen = 0
    while seen < 2 and time.monotonic() < deadline:
        try:
            patch = got.get_nowait()
        except queue.Empty:
            await asyncio.sleep(0.02)
            continue
        seen += 1
        out("desired", patch=patch)
    await client.shutdown()
    out("done" if seen == 2 else "timeout")


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    asyncio.run(main(json.loads(sys.argv[1])))
