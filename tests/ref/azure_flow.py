"""The Azure fidelity flow, written against azure-iot-device 2.14 (run in .venv-ref/azure).

    python tests/ref/azure_flow.py '<config JSON>'

config: {"auth": "sas" | "x509", "dps_host", "id_scope", "registration_id", "key" (sas),
"cert_file"/"key_file" (x509), "ca_file", "timeout_s"}. Prints one JSON line per step
({"step": ...}) for tests/test_azure_sdk_fidelity.py, which drives the emulator's side
(desired patch, method, C2D) once it reads {"step": "ready"}. Any client that prints the
same lines for the same config can run the same test (Tether's own client does).
"""

import asyncio
import json
import logging
import queue
import sys
import time

from azure.iot.device import X509, Message, MethodResponse
from azure.iot.device.aio import IoTHubDeviceClient, ProvisioningDeviceClient


def out(step, **data):
    print(json.dumps(dict(step=step, **data), sort_keys=True), flush=True)


async def next_event(q, deadline):
    # The SDK runs handlers on its own loop/thread: a thread-safe queue, polled.
    while time.monotonic() < deadline:
        try:
            return q.get_nowait()
        except queue.Empty:
            await asyncio.sleep(0.02)
    raise TimeoutError("nothing arrived")


async def main(cfg):
    ca = open(cfg["ca_file"]).read()
    deadline = time.monotonic() + cfg.get("timeout_s", 30)
    reg = cfg["registration_id"]
    if cfg["auth"] == "x509":
        x509 = X509(cert_file=cfg["cert_file"], key_file=cfg["key_file"])
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

    if cfg["auth"] == "x509":
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

    events = queue.Queue()

    def on_desired(patch):
        events.put(("desired", patch))

    async def on_method(request):
        events.put(("method", {"name": request.name, "payload": request.payload}))
        response = MethodResponse.create_from_method_request(
            request, 200, {"result": "ok", "echo": request.payload}
        )
        await client.send_method_response(response)

    def on_message(message):
        events.put(
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

    seen = set()
    while len(seen) < 3:
        kind, data = await next_event(events, deadline)
        seen.add(kind)
        out(kind, **({"patch": data} if kind == "desired" else data))

    await client.shutdown()
    out("done")


if __name__ == "__main__":
    # the SDK's own warnings (retries, refusals) land in the test's client log on failure
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(main(json.loads(sys.argv[1])))
