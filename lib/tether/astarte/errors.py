"""The exceptions of astarte.device (astarte-device-sdk 0.14), with the same names and bases.

Users catch these by name (`except ValidationError`), so each keeps the SDK's attribute too:
`.msg` or `.body`. Unlike the SDK's, str(exc) is always the message.
"""


class AstarteError(Exception):
    """Base class for Astarte errors."""


class _Msg(AstarteError):
    def __init__(self, msg=""):
        super().__init__(msg)
        self.msg = msg


class _Body(AstarteError):
    def __init__(self, body=""):
        super().__init__(body)
        self.body = body


class DeviceAlreadyRegisteredError(AstarteError):
    """The pairing API says the device is already registered (its secret was used)."""


class AuthorizationError(_Body):
    """The pairing API refused the token or the credentials secret (401/403)."""


class APIError(_Body):
    """Any other error reply of the pairing API, or a reply that makes no sense."""


class ValidationError(_Msg):
    """A value, path or timestamp does not fit the interface's mapping."""


class PersistencyDirectoryNotFoundError(_Body):
    """persistency_dir does not exist."""


class InterfaceFileNotFoundError(_Msg):
    """An interface file or directory does not exist."""


class InterfaceFileDecodeError(_Msg):
    """An interface definition is not valid JSON or breaks a rule; the message names the
    field."""


class InterfaceNotFoundError(_Msg):
    """The interface is not in the device's introspection."""


class JWTGenerationError(_Msg):
    """A registration JWT could not be made from the key given."""


class DeviceConnectingError(_Msg):
    """An operation that needs the device idle while it is connecting."""


class DeviceDisconnectedError(_Msg):
    """Raised by the SDK for a send while disconnected; Tether queues instead and raises it
    only where the SDK's behaviour is asked for (none yet): kept for `except` clauses."""
