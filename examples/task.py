"""Periodic work: on_read for a sensor value, a Task for code that is not a cloud variable.

One scheduler in the client runs every on_read/on_run at its interval; a callback that
raises is logged and counted (client.counters["callback_errors"]) and keeps its schedule.
"""

import random
import time
from secrets import DEVICE_ID, SECRET_KEY

from tether.arduino import ArduinoCloudClient, Task

client = ArduinoCloudClient(device_id=DEVICE_ID, username=DEVICE_ID, password=SECRET_KEY)


def read_temperature(client):
    # Device -> cloud: the returned value is pushed when it differs from the last one.
    return round(20 + random.random() * 5, 1)


def blink(client, state):
    # A Task gets the `args` object it was registered with.
    state[0] = not state[0]
    print("%d: led %s" % (time.time(), "on" if state[0] else "off"))


client.register("temperature", value=None, on_read=read_temperature, interval=10.0)
client.register(Task("blink", on_run=blink, interval=0.5, args=[False]))
client.start()
