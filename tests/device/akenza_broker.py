"""A scripted akenza broker for the device tests (both interpreters; no sockets, no TLS).

Plays the broker for one AkenzaClient (tests/device/cloud_broker.py does the MQTT half):
records every CONNECT (client id, username, password), SUBSCRIBE and PUBLISH, answers
CONNACK (or the refusal code in `refuse`), and sends downlinks with `down()`. It checks
nothing about the JWT: the tests decode it themselves, and tests/test_akenza_client.py runs
the client against the emulator, which verifies it with PyJWT.
"""

from cloud_broker import CloudBroker, fast, parse_connect, until  # noqa: F401
from dt_arduino_wire import parse_publish, parse_subscribe  # noqa: F401 (azure_broker)


class AkenzaBroker(CloudBroker):
    pass


async def stop(client, tasks):
    client.stop()
    assert await until(lambda: tasks[0].done(), 3000)
    for t in tasks[1:]:
        t.cancel()
