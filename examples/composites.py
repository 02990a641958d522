"""Composite cloud types: one variable with several fields, sent and received together.

On the wire each field is its own SenML record ("lamp:hue", "lamp:bri", ...) and a change
to any field sends all of them, because the cloud has no partial update of an object.
"""

from secrets import DEVICE_ID, SECRET_KEY

from tether.arduino import ArduinoCloudClient, ColoredLight, Location, Television

client = ArduinoCloudClient(device_id=DEVICE_ID, username=DEVICE_ID, password=SECRET_KEY)


def on_lamp(client, lamp):
    # Cloud -> device: composites pass the object itself; fields read as attributes.
    print("lamp: on=%s hue=%s sat=%s bri=%s" % (lamp.swi, lamp.hue, lamp.sat, lamp.bri))


def on_tv(client, tv):
    if tv.inp == Television.INPUT_HDMI1:
        print("tv switched to HDMI 1, volume", tv.vol)


# Fields given here are the initial value; leave them out to take the cloud's last value.
client.register(ColoredLight("lamp", on_write=on_lamp))
client.register(Location("home", lat=45.4642, lon=9.19))
client.register(Television("tv", on_write=on_tv))

# Device -> cloud: assign a field; the whole object is pushed at once.
client["home"].lat = 45.4700

client.start()
