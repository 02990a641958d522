"""The client side of bench/azure_vs_sdk.py, written for azure-iot-device 2.14.

    python tests/ref/azure_perf_client.py sdk|tether|bare '<config JSON>'

With "tether" the azure.iot.device imports resolve to tether.azure (what a user does by
editing the import lines). DPS register, hub connect, then N QoS 1 messages one after the
other, then a method handler; one line per step on stdout. "bare" imports what this
program needs besides the library (asyncio, ssl, json) and reports its RSS: the baseline
the RSS increments are taken over. No pathlib here (its urllib.parse and ipaddress cost
about 0.5 MB): the harness must not add to either side's figure.
"""

import asyncio
import json
import os
import ssl  # noqa: F401 (both libraries load it; the bare run too)
import sys
import time


def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


if sys.argv[1] == "bare":
    print("BARE %d" % rss_kb(), flush=True)
    sys.exit(0)

if sys.argv[1] == "tether":
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(here)), "lib"))
    import tether.azure
    import tether.azure.aio
    from tether import log

    log.basicConfig(level=log.WARNING, stream=sys.stderr)
    sys.modules["azure.iot.device"] = tether.azure
    sys.modules["azure.iot.device.aio"] = tether.azure.aio

from azure.iot.device import Message, MethodResponse  # noqa: E402
from azure.iot.device.aio import IoTHubDeviceClient, ProvisioningDeviceClient  # noqa: E402


async def main(cfg):
    with open(cfg["ca_file"]) as f:
        ca = f.read()
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
    c0 = time.process_time()  # all of this process's threads (the SDK runs several)
    for i in range(n):
        m = Message('{"n": %d}' % i)
        m.custom_properties["seq"] = str(i)
        await client.send_message(m)
    dt = time.perf_counter() - t0
    print("RATE %.1f %.4f" % (n / dt, (time.process_time() - c0) / n * 1000), flush=True)

    async def on_method(req):
        await client.send_method_response(
            MethodResponse.create_from_method_request(req, 200, req.payload)
        )

    client.on_method_request_received = on_method
    print("READY", flush=True)
    await asyncio.sleep(cfg["serve_s"])
    await client.shutdown()


asyncio.run(main(json.loads(sys.argv[2])))
