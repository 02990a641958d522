"""The client side of bench/azure_vs_sdk.py, written for azure-iot-device 2.14.

    python tests/ref/azure_perf_client.py sdk|tether '<config JSON>'

With "tether" the azure.iot.device imports resolve to tether.azure (what a user does by
editing the import lines). DPS register, hub connect, then N QoS 1 messages one after the
other, then a method handler; one line per step on stdout.
"""

import asyncio
import json
import sys
import time
from pathlib import Path

if sys.argv[1] == "tether":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lib"))
    import tether.azure
    import tether.azure.aio
    from tether import log

    log.basicConfig(level=log.WARNING, stream=sys.stderr)
    sys.modules["azure.iot.device"] = tether.azure
    sys.modules["azure.iot.device.aio"] = tether.azure.aio

from azure.iot.device import Message, MethodResponse  # noqa: E402
from azure.iot.device.aio import IoTHubDeviceClient, ProvisioningDeviceClient  # noqa: E402


def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def main(cfg):
    ca = open(cfg["ca_file"]).read()
    prov = ProvisioningDeviceClient.create_from_symmetric_key(
        provisioning_host=cfg["dps_host"],
        registration_id=cfg["reg"],
        id_scope=cfg["id_scope"],
        symmetric_key=cfg["key"],
        server_verification_cert=ca,
    )
    r = await prov.register()
    st = r.registration_state
    client = IoTHubDeviceClient.create_from_symmetric_key(
        symmetric_key=cfg["key"],
        hostname=st.assigned_hub,
        device_id=st.device_id,
        server_verification_cert=ca,
    )
    await client.connect()
    print("CONNECTED %d" % rss_kb(), flush=True)
    n = cfg["messages"]
    t0 = time.perf_counter()
    for i in range(n):
        m = Message('{"n": %d}' % i)
        m.custom_properties["seq"] = str(i)
        await client.send_message(m)
    dt = time.perf_counter() - t0
    print("RATE %.1f" % (n / dt), flush=True)

    async def on_method(req):
        await client.send_method_response(
            MethodResponse.create_from_method_request(req, 200, req.payload)
        )

    client.on_method_request_received = on_method
    print("READY", flush=True)
    await asyncio.sleep(cfg["serve_s"])
    await client.shutdown()


asyncio.run(main(json.loads(sys.argv[2])))
