"""The client as one asyncio task among the app's own (what firmware/main.py does)."""

import asyncio
from secrets import DEVICE_ID, SECRET_KEY

from tether.arduino import ArduinoCloudClient

client = ArduinoCloudClient(device_id=DEVICE_ID, username=DEVICE_ID, password=SECRET_KEY)
client.register("uptime", value=0)


async def count():
    while True:
        await asyncio.sleep(60)
        client["uptime"] += 1  # pushed as soon as it changes
        print("state:", client.session.state, "counters:", client.counters)


async def main():
    asyncio.create_task(count())
    await client.run()  # forever: connect, sync, serve, reconnect with backoff


asyncio.run(main())
