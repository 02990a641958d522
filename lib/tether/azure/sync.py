"""The synchronous clients of azure.iot.device 2.14: tether.azure.IoTHubDeviceClient and
ProvisioningDeviceClient, wrapping the asyncio ones (tether.azure.aio).

On CPython the asyncio client runs on a background thread, as the SDK's does: handlers run
there, keepalives and reconnects go on between calls, and a handler may call
send_method_response() (it is queued when called from that thread). On MicroPython each
call runs the loop until it completes: handlers, keepalives and reconnects run only inside
calls, so a program calls something (e.g. `client.update()`, Tether's extension) at least
every keep_alive / 2 seconds; tether.azure.aio is the better fit there.
"""

import asyncio

try:
    import threading
except ImportError:  # MicroPython: no threading module (its _thread cannot share a loop)
    threading = None


async def _pause(ms):
    await asyncio.sleep(ms / 1000)  # run_until_complete needs a coroutine (MicroPython)


class _Runner:
    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = None
        if threading is not None:
            self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
            self.thread.start()

    def call(self, coro):
        if self.thread is None:
            return self.loop.run_until_complete(coro)
        if threading.current_thread() is self.thread:  # from a handler: do not deadlock
            return self.loop.create_task(coro)
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()


class _Sync:
    def __init__(self, client):
        object.__setattr__(self, "_client", client)
        object.__setattr__(self, "_runner", _Runner())

    def __getattr__(self, name):
        return getattr(self._client, name)

    def __setattr__(self, name, value):
        setattr(self._client, name, value)  # handlers and provisioning_payload

    def _call(self, coro):
        return self._runner.call(coro)


class IoTHubDeviceClient(_Sync):
    @classmethod
    def create_from_connection_string(cls, connection_string, **kwargs):
        from tether.azure.device import IoTHubDeviceClient as A

        return cls(A.create_from_connection_string(connection_string, **kwargs))

    @classmethod
    def create_from_symmetric_key(cls, symmetric_key, hostname, device_id, **kwargs):
        from tether.azure.device import IoTHubDeviceClient as A

        return cls(A.create_from_symmetric_key(symmetric_key, hostname, device_id, **kwargs))

    @classmethod
    def create_from_x509_certificate(cls, x509, hostname, device_id, **kwargs):
        from tether.azure.device import IoTHubDeviceClient as A

        return cls(A.create_from_x509_certificate(x509, hostname, device_id, **kwargs))

    def connect(self):
        return self._call(self._client.connect())

    def disconnect(self):
        return self._call(self._client.disconnect())

    def shutdown(self):
        r = self._call(self._client.shutdown())
        if self._runner.thread is not None:
            self._runner.loop.call_soon_threadsafe(self._runner.loop.stop)
        return r

    def send_message(self, message):
        return self._call(self._client.send_message(message))

    def get_twin(self):
        return self._call(self._client.get_twin())

    def patch_twin_reported_properties(self, reported_properties_patch):
        return self._call(self._client.patch_twin_reported_properties(reported_properties_patch))

    def send_method_response(self, method_response):
        return self._call(self._client.send_method_response(method_response))

    def update(self, ms=10):
        """MicroPython: let the client run for `ms` (network, handlers, keepalive)."""
        return self._call(_pause(ms))


class ProvisioningDeviceClient(_Sync):
    @classmethod
    def create_from_symmetric_key(
        cls, provisioning_host, registration_id, id_scope, symmetric_key, **kwargs
    ):
        from tether.azure.dps import ProvisioningDeviceClient as A

        return cls(
            A.create_from_symmetric_key(
                provisioning_host, registration_id, id_scope, symmetric_key, **kwargs
            )
        )

    @classmethod
    def create_from_x509_certificate(
        cls, provisioning_host, registration_id, id_scope, x509, **kwargs
    ):
        from tether.azure.dps import ProvisioningDeviceClient as A

        return cls(
            A.create_from_x509_certificate(
                provisioning_host, registration_id, id_scope, x509, **kwargs
            )
        )

    def register(self):
        return self._call(self._client.register())

    def shutdown(self):
        if self._runner.thread is not None:
            self._runner.loop.call_soon_threadsafe(self._runner.loop.stop)
