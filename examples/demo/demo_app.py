"""The `make demo` app: what a small real board would run (the firmware imports it).

- temperature: a simulated sensor, pushed every few seconds (device -> cloud)
- led: a switch written from the dashboard; on_write "drives" the LED (cloud -> device)
- location: a Location (composite: lat, lon), moved a little at every reading

Runs unchanged on a board and on the MicroPython unix port (tools/demo.py). Every line
starting with "demo:" is the app speaking; tests look for them.
"""

import asyncio
import random

from tether.arduino import Location

PERIOD_S = 3


def on_led(client, value):
    # A real board would drive a pin here: machine.Pin("LED", machine.Pin.OUT).value(value)
    print("demo: LED %s (written from the cloud)" % ("ON" if value else "OFF"))


def setup(client):
    # value=None: the last value stored in the cloud initialises it at connect.
    client.register("led", value=None, on_write=on_led)
    client.register("temperature", value=21.0)
    client.register(Location("location", lat=45.4642, lon=9.19))
    print("demo: app ready (temperature every %d s, led writable, location)" % PERIOD_S)


async def loop(client):
    temperature = 21.0
    while True:
        await asyncio.sleep(PERIOD_S)
        # A slow random walk, like a real room.
        temperature += (random.random() - 0.5) * 0.6
        temperature = min(30.0, max(15.0, temperature))
        client["temperature"] = round(temperature, 2)
        loc = client["location"]
        loc.lat = round(loc.lat + (random.random() - 0.5) * 0.0004, 6)
        loc.lon = round(loc.lon + (random.random() - 0.5) * 0.0004, 6)
        print("demo: temperature %.2f C" % temperature)
