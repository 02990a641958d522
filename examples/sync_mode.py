"""Synchronous mode: start() returns once connected; the app calls update() in its loop.

update() does one bounded step (network, due callbacks, pushes) and returns within a few
milliseconds, so it fits a superloop that also does other work.
"""

import time
from secrets import DEVICE_ID, SECRET_KEY

from tether.arduino import ArduinoCloudClient


def on_switch(client, value):
    client["led"] = value


client = ArduinoCloudClient(
    device_id=DEVICE_ID, username=DEVICE_ID, password=SECRET_KEY, sync_mode=True
)
client.register("sw1", value=None, on_write=on_switch)
client.register("led", value=None)

client.start()  # returns when attached to the thing
while True:
    client.update()
    time.sleep(0.1)
