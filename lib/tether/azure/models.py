"""The SDK's value classes: Message, MethodRequest, MethodResponse, X509, RegistrationResult.

Same constructors and attribute names as azure.iot.device 2.14; plain attributes (no
properties where the SDK's are read-only), so each costs a few dozen bytes.
"""


class Message:
    """A telemetry message (to the hub) or a cloud-to-device message (from it)."""

    def __init__(
        self, data, message_id=None, content_encoding=None, content_type=None, output_name=None
    ):
        self.data = data
        self.custom_properties = {}
        self.message_id = message_id
        self.expiry_time_utc = None
        self.correlation_id = None
        self.user_id = None
        self.content_encoding = content_encoding
        self.content_type = content_type
        self.output_name = output_name
        self.input_name = None
        self.ack = None

    def __str__(self):
        return str(self.data)

    def get_size(self):
        n = len(self.data) if self.data is not None else 0
        for k, v in self.custom_properties.items():
            n += len(str(k)) + len(str(v))
        return n


class MethodRequest:
    """A direct-method call: `name`, `payload` (parsed JSON or None), `request_id`."""

    def __init__(self, request_id, name, payload):
        self.request_id = request_id
        self.name = name
        self.payload = payload


class MethodResponse:
    """The answer to a MethodRequest: `status` (int) and a JSON-serializable `payload`."""

    def __init__(self, request_id, status, payload=None):
        self.request_id = request_id
        self.status = status
        self.payload = payload

    @classmethod
    def create_from_method_request(cls, method_request, status, payload=None):
        return cls(method_request.request_id, status, payload)


class X509:
    """Certificate and key files (DER or PEM on every interpreter; a path or the bytes).

    pass_phrase: refused on MicroPython (decrypt the key on a host first, docs/azure.md)."""

    def __init__(self, cert_file, key_file, pass_phrase=None):
        self.certificate_file = cert_file
        self.key_file = key_file
        self.pass_phrase = pass_phrase


class RegistrationState:
    """Where DPS assigned the device: `assigned_hub`, `device_id`, `sub_status`."""

    def __init__(
        self,
        device_id=None,
        assigned_hub=None,
        sub_status=None,
        created_date_time=None,
        last_update_date_time=None,
        etag=None,
        payload=None,
    ):
        self.device_id = device_id
        self.assigned_hub = assigned_hub
        self.sub_status = sub_status
        self.created_date_time = created_date_time
        self.last_update_date_time = last_update_date_time
        self.etag = etag
        self.response_payload = payload

    @property
    def substatus(self):  # the name issue 12 and the REST docs use
        return self.sub_status

    def __str__(self):
        return "\n".join([str(self.device_id), str(self.assigned_hub), str(self.sub_status)])


class RegistrationResult:
    """The outcome of ProvisioningDeviceClient.register()."""

    def __init__(self, operation_id, status, registration_state=None):
        self.operation_id = operation_id
        self.status = status
        self.registration_state = registration_state

    def __str__(self):
        return "\n".join([str(self.registration_state), str(self.status)])


def state_from_json(st):
    """A RegistrationState from DPS's `registrationState` object (None for None)."""
    if not isinstance(st, dict):
        return None
    return RegistrationState(
        st.get("deviceId"),
        st.get("assignedHub"),
        st.get("substatus"),
        st.get("createdDateTimeUtc"),
        st.get("lastUpdatedDateTimeUtc"),
        st.get("etag"),
        st.get("payload"),
    )
