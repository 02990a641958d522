"""Example app module: the firmware imports it after the cloud client exists.

Copy it next to settings.json (a board: the root of the filesystem) and edit. `setup`
registers the cloud variables; the optional `loop` runs as a task for as long as the
firmware runs. See docs/firmware.md.
"""

import asyncio

from tether import log

_log = log.getLogger("app")


def setup(client):
    # cloud -> device: the dashboard's switch calls on_write
    def on_switch(client, value):
        _log.info("switch -> %r", value)
        client["led"] = value

    client.register("sw1", value=None, on_write=on_switch)
    client.register("led", value=None)
    client.register("uptime", value=0)


async def loop(client):
    # device -> cloud: a counter pushed every 10 s
    n = 0
    while True:
        await asyncio.sleep(10)
        n += 10
        client["uptime"] = n
