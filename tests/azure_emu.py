"""Shared pieces of the Azure emulator tests (tests/test_azure_emulator*.py): a module-scoped
emulator with the Azure plug-in on its own loopback pair, and a device built on Tether's
MQTTClient (CPython) that collects what it receives. SAS tokens come from tether.sas, and
the emulator checks them with its own code: a connect that works is a differential test.
"""

import asyncio
import random
import ssl
import time

from tether import sas
from tether.mqtt import MQTTClient

from tools.cloudsim import CloudSim
from tools.cloudsim.plugins.azure import AzurePlugin


def loopback_pair():
    """Two loopback addresses of their own (hub, DPS): the SDK hard-codes port 8883, so
    parallel runs must not share an address."""
    a, b = random.randint(16, 250), random.randint(1, 250)
    return "127.%d.%d.2" % (a, b), "127.%d.%d.3" % (a, b)


def start_sim(workdir, **options):
    hub, dps = loopback_pair()
    azure = AzurePlugin(hub_host=hub, dps_host=dps, **options)
    return CloudSim(workdir, clouds=[azure], dashboard=False).start(), azure


KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  # protocols.md §2.2's test key


def azure_env(tmp_path_factory):
    """A test module's emulator: `yield from azure_env(tmp_path_factory)` in its fixture."""
    sim, azure = start_sim(tmp_path_factory.mktemp("azure"))
    try:
        yield sim, azure
    finally:
        sim.stop()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def tls(sim, cert=None, key=None):
    ctx = ssl.create_default_context(cafile=str(sim.ca.cert_pem_path))
    if cert:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


class Dev:
    """A device on the hub (or DPS) listener, collecting what it receives."""

    def __init__(
        self,
        sim,
        azure,
        device_id,
        password=None,
        user=None,
        client_id=None,
        clean_session=True,
        cert=None,
        key=None,
        dps=False,
    ):
        self.got = asyncio.Queue()
        host = azure.dps_host if dps else azure.hub_host
        if user is None:
            user = (
                "%s/registrations/%s/api-version=2019-03-31" % (azure.id_scope, device_id)
                if dps
                else "%s/%s/?api-version=2021-04-12" % (azure.hub_host, device_id)
            )
        self.mqtt = MQTTClient(
            device_id if client_id is None else client_id,
            host,
            azure.port,
            user=user,
            password=password,
            ssl=tls(sim, cert, key),
            server_hostname=host,
            keepalive=30,
            clean_session=clean_session,
            on_message=lambda t, p, r, q: self.got.put_nowait((t, bytes(p))),
        )

    async def next(self, timeout=5):
        return await asyncio.wait_for(self.got.get(), timeout)


def token(azure, device_id, key=KEY, ttl=600, host=None):
    return sas.hub_token(host or azure.hub_host, device_id, key, expiry=int(time.time()) + ttl)
