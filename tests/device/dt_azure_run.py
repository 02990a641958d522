"""tether.azure pieces the firmware and the heap budget rely on (both interpreters):

- A client whose run() someone else started (the firmware: `await client.run()`, the app's
  loop sends at once) sends through that connection: send_message() and connect() wait for
  it and never start a second run (which would log in twice and take the first one over).
- The SAS TLS context with DER roots (the embedded ones, a DER ca from settings, bytes or a
  path) is built on MicroPython without tether.creds / tlsctx / der: their code and qstrs
  cost the hub connect ~15 KB of heap from .mpy.
"""

import asyncio
import sys

from azure_broker import AzureBroker, hub_client, until
from harness import run
from tether.azure import Message, common
from tether.azure.roots import ROOTS
from tether.compat import MICROPYTHON

HEAVY = ("tether.creds", "tether.tlsctx", "tether.der")


def test_send_before_connected_under_an_external_run():
    async def main():
        broker = AzureBroker()
        srv = asyncio.create_task(broker.serve())
        c = hub_client(broker)
        # The firmware's run (or a program's), not the client's own; the send and the
        # connect come before that task has even started (awaited directly, no new task).
        runner = asyncio.create_task(c.run())
        try:
            await c.send_message(Message("early"))  # not connected yet: returns once queued
            await c.connect()  # waits for the runner's connection
            assert c.connected
            await c.send_message("late")
            assert [p for t, p in broker.ups("devices/")] == [b"early", b"late"]
            assert len(broker.logins) == 1 and c.stats()["reconnects"] == 0
            assert not runner.done()  # connect() left the firmware's run alone
        finally:
            c.stop()
            srv.cancel()
        await asyncio.wait_for(runner, 5)

    run(main())


def test_connect_under_an_external_run_times_out_without_stopping_it():
    async def main():
        broker = AzureBroker()
        broker.refuse = 3  # the hub is away
        srv = asyncio.create_task(broker.serve())
        c = hub_client(broker)
        c.CONNECT_TIMEOUT_MS = 300
        runner = asyncio.create_task(c.run())
        from tether.azure import OperationTimeout

        try:
            await asyncio.wait_for(c.connect(), 5)
            raise AssertionError("connected to a refusing hub")
        except OperationTimeout:
            pass
        assert not runner.done()  # still trying, as the firmware wants
        broker.refuse = 0
        assert await until(lambda: c.connected, 3000)
        c.stop()
        await asyncio.wait_for(runner, 5)
        srv.cancel()

    run(main())


def test_der_roots_recognised():
    assert common._der_list(None) is None
    assert common._der_list(list(ROOTS)) == list(ROOTS)
    assert common._der_list(ROOTS[0]) == [ROOTS[0]]
    assert common._der_list("-----BEGIN CERTIFICATE-----\nMIIB\n") is None  # PEM text
    assert common._der_list("/nonexistent/ca.der") is None
    path = "/tmp/tether_dt_azure_ca.der"
    with open(path, "wb") as f:
        f.write(ROOTS[1])
    assert common._der_list(path) == [ROOTS[1]]


def test_sas_context_with_der_roots_skips_the_key_modules():
    # Popped to see whether the context build imports them again; put back afterwards, so
    # that modules imported earlier (tether.csr holds tether.der's DERError) and the next
    # test files see the same module objects.
    saved = {name: sys.modules.pop(name) for name in HEAVY if name in sys.modules}
    try:
        _check_sas_context_skips(HEAVY)
    finally:
        for name in HEAVY:
            sys.modules.pop(name, None)
        sys.modules.update(saved)
        for name, mod in saved.items():  # `import tether.der` reads the package attribute
            setattr(sys.modules["tether"], name.split(".")[1], mod)


def _check_sas_context_skips(heavy):
    path = "/tmp/tether_dt_azure_ca.der"
    with open(path, "wb") as f:
        f.write(ROOTS[0])
    for ca in (None, ROOTS[1], path):
        ctx = common.tls_context_once(ca, None)
        assert ctx is not None and hasattr(ctx, "wrap_socket")
        if MICROPYTHON:
            assert type(ctx).__name__ == "_NoDelay", type(ctx)
            assert [n for n in heavy if n in sys.modules] == []
