"""Sync mode of a cloud client (`sync_mode=True`): the app calls start() once, then update()
in its own loop; each call runs the client's event loop for a few ms. Loaded only in sync
mode (tether.cloud.client)."""

import asyncio


async def _pause_ms(ms):
    # run_until_complete needs a coroutine; MicroPython's sleep_ms is not one
    await (asyncio.sleep_ms(ms) if hasattr(asyncio, "sleep_ms") else asyncio.sleep(ms / 1000))


def start(client):
    """Make the loop (once), start the background work, return once connected."""
    if client._loop is None:
        client._loop = asyncio.new_event_loop()
        if hasattr(asyncio, "set_event_loop"):
            asyncio.set_event_loop(client._loop)
        client._loop.run_until_complete(client._begin())
    client._loop.run_until_complete(client.wait(lambda: client.connected, 0x3FFFFFFF))


def update(client):
    """One bounded step: the loop runs what is due for 2 ms."""
    if client._loop is None:
        client.start()
    client._loop.run_until_complete(_pause_ms(2))
