"""The exceptions of azure.iot.device 2.14 (azure/iot/device/exceptions.py), same names and
bases, so `except ClientError` and `except CredentialError` port unchanged.

CredentialError here is the SDK's (a ClientError), not tether.errors.CredentialError (a
ValueError raised while loading keys): a refused login raises this one.
"""


class OperationCancelled(Exception):
    """An operation was cancelled (disconnect or shutdown while it waited)."""


class OperationTimeout(Exception):
    """An operation got no answer in time (a twin request, a DPS reply)."""


class ClientError(Exception):
    """A client-side failure; the service answered with an error status for twin/DPS."""


class ConnectionFailedError(ClientError):
    """Connecting failed (network, TLS, CONNACK refused for a reason other than auth)."""


class ConnectionDroppedError(ClientError):
    """The connection dropped while an operation was in flight."""


class NoConnectionError(ClientError):
    """The operation needs a connection and there is none."""


class CredentialError(ClientError):
    """The service refused the credentials (CONNACK 4 or 5, DPS 401)."""


class ServiceError(Exception):
    """The service failed (5xx after the retries)."""
