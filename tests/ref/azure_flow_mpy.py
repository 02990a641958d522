"""The Azure fidelity flow (tests/ref/azure_flow.py) for the MicroPython unix port.

    micropython tests/ref/azure_flow_mpy.py '<config JSON>' | @config.json

(MICROPYPATH=.frozen:lib)

The same steps and the same JSON lines as the SDK's flow, on tether.azure.aio; what differs
is only what MicroPython lacks: no `queue` and no threads (Tether runs handlers on the
program's own loop, so a list does), no `time.monotonic`, files read as DER bytes.
"""

import asyncio
import json
import sys

from tether import log
from tether.azure import X509, Message, MethodResponse
from tether.azure.aio import IoTHubDeviceClient, ProvisioningDeviceClient
from tether.compat import ticks_diff, ticks_ms

log.basicConfig(level=log.WARNING, stream=sys.stderr)


def out(step, **data):
    d = dict(step=step)
    d.update(data)
    print(json.dumps(d))


def read(path):
    with open(path, "rb") as f:
        return f.read()


async def next_event(events, t0, timeout_ms):
    while not events:
        if ticks_diff(ticks_ms(), t0) > timeout_ms:
            raise OSError(110, "nothing arrived")
        await asyncio.sleep(0.02)
    return events.pop(0)


async def main(cfg):
    ca = read(cfg["ca_der"])
    t0 = ticks_ms()
    timeout_ms = cfg.get("timeout_s", 30) * 1000
    reg = cfg["registration_id"]
    x509 = None
    if cfg["auth"] == "x509":
        x509 = X509(cert_file=cfg["cert_der"], key_file=cfg["key_der"])
        prov = ProvisioningDeviceClient.create_from_x509_certificate(
            provisioning_host=cfg["dps_host"],
            registration_id=reg,
            id_scope=cfg["id_scope"],
            x509=x509,
            server_verification_cert=ca,
        )
    else:
        prov = ProvisioningDeviceClient.create_from_symmetric_key(
            provisioning_host=cfg["dps_host"],
            registration_id=reg,
            id_scope=cfg["id_scope"],
            symmetric_key=cfg["key"],
            server_verification_cert=ca,
        )
    prov.provisioning_payload = {"modelId": "dtmi:tether:test;1"}
    result = await prov.register()
    state = result.registration_state
    out(
        "dps",
        status=result.status,
        hub=state.assigned_hub,
        device_id=state.device_id,
        substatus=state.sub_status,
    )
    if x509 is not None:
        client = IoTHubDeviceClient.create_from_x509_certificate(
            x509=x509,
            hostname=state.assigned_hub,
            device_id=state.device_id,
            server_verification_cert=ca,
        )
    else:
        client = IoTHubDeviceClient.create_from_symmetric_key(
            symmetric_key=cfg["key"],
            hostname=state.assigned_hub,
            device_id=state.device_id,
            server_verification_cert=ca,
        )
    await client.connect()
    out("connected", device_id=state.device_id)

    for i in range(3):
        msg = Message(json.dumps({"n": i, "temp": 20.5 + i}))
        msg.message_id = "m%d" % i
        msg.content_type = "application/json"
        msg.content_encoding = "utf-8"
        msg.custom_properties["seq"] = str(i)
        msg.custom_properties["alert"] = "hi & lo"
        await client.send_message(msg)
    out("telemetry", count=3)

    twin = await client.get_twin()
    out(
        "twin",
        desired_version=twin["desired"]["$version"],
        reported_version=twin["reported"]["$version"],
    )
    await client.patch_twin_reported_properties({"fw": "1.0.0", "temp": 21.5, "gone": None})
    twin = await client.get_twin()
    reported = {k: v for k, v in twin["reported"].items() if not k.startswith("$")}
    out("reported", reported_version=twin["reported"]["$version"], reported=reported)

    events = []

    def on_desired(patch):
        events.append(("desired", patch))

    async def on_method(request):
        events.append(("method", {"name": request.name, "payload": request.payload}))
        response = MethodResponse.create_from_method_request(
            request, 200, {"result": "ok", "echo": request.payload}
        )
        await client.send_method_response(response)

    def on_message(message):
        events.append(
            (
                "c2d",
                {
                    "body": message.data.decode(),
                    "message_id": message.message_id,
                    "content_type": message.content_type,
                    "custom_properties": message.custom_properties,
                },
            )
        )

    client.on_twin_desired_properties_patch_received = on_desired
    client.on_method_request_received = on_method
    client.on_message_received = on_message
    out("ready")

    seen = []
    while len(seen) < 3:
        kind, data = await next_event(events, t0, timeout_ms)
        if kind not in seen:
            seen.append(kind)
        if kind == "desired":
            out(kind, patch=data)
        else:
            d = dict(data)
            out(kind, **d)

    await client.shutdown()
    out("done")


def config(arg):
    # "@path": the unix port 1.29 dies (FATAL: uncaught NLR) on an argument of 256 bytes or
    # more, so the test hands the JSON over in a file.
    if arg.startswith("@"):
        return json.loads(read(arg[1:]))
    return json.loads(arg)


asyncio.run(main(config(sys.argv[1])))
