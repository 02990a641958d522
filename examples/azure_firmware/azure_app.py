"""Azure app (azure_app.py) for the Tether firmware (`"cloud": "azure"` in settings.json).

The firmware builds the client from settings.json through tether.azure.profile (DPS or a
connection string, the assignment cached in flash) and hands it here: the same
tether.azure.aio.IoTHubDeviceClient a program gets from the SDK's factories. `setup` sets the
handlers; `loop` sends telemetry, which goes through the firmware's flash store, so what is
sent while the hub is unreachable is delivered in order after the reconnect.
"""

import asyncio
import json

from tether import log
from tether.azure import Message, MethodResponse

_log = log.getLogger("app")
PERIOD_S = 1
state = {"interval": PERIOD_S, "sent": 0}


def setup(client):
    async def on_method(request):
        # A method may await its response, as in the SDK's aio API.
        if request.name == "set_interval" and isinstance(request.payload, (int, float)):
            state["interval"] = max(0.1, request.payload)
            status, body = 200, {"interval": state["interval"]}
        else:
            status, body = 404, {"unknown": request.name}
        await client.send_method_response(
            MethodResponse.create_from_method_request(request, status, body)
        )

    async def on_desired(patch):
        _log.info("desired %s", json.dumps(patch))
        if "interval" in patch:
            state["interval"] = patch["interval"]
        await client.patch_twin_reported_properties({"interval": state["interval"]})

    client.on_method_request_received = on_method
    client.on_twin_desired_properties_patch_received = on_desired


async def loop(client):
    n = 0
    while True:
        msg = Message(json.dumps({"n": n}), content_type="application/json")
        msg.content_encoding = "utf-8"
        msg.custom_properties["seq"] = str(n)
        await client.send_message(msg)
        state["sent"] = n = n + 1
        _log.info("telemetry %d delivered", n)
        await asyncio.sleep(state["interval"])
