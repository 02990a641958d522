"""ProvisioningDeviceClient: DPS registration over MQTT (protocols.md §2.6, §2.11).

    prov = ProvisioningDeviceClient.create_from_symmetric_key(
        "global.azure-devices-provisioning.net", "dev-1", "0ne00000000", key)
    prov.provisioning_payload = {"modelId": "dtmi:..."}
    result = await prov.register()          # RegistrationResult
    result.registration_state.assigned_hub, .device_id, .sub_status

One clean MQTT connection (client id = registration id, username
`{scope}/registrations/{reg}/api-version=2019-03-31&ClientVersion=...`, no `?`; SAS with
`skn=registration`, or X.509 with no password): SUBSCRIBE `$dps/registrations/res/#`, PUT
iotdps-register with a `$rid`, then poll iotdps-get-operationstatus while the answer is 202,
waiting `retry-after` seconds (clamped to RETRY_MIN_S..RETRY_MAX_S: a hostile 10^9 cannot
park the device). 429 and 5xx re-send the register after a backoff (at most RETRIES); a 202
without an operationId does too. 401 raises CredentialError, `"status": "failed"` and other
4xx ClientError, all naming what DPS said. The whole registration is bounded by TIMEOUT_S.

For a group enrollment pass the group key and group=True: the device key is derived here
(tether.sas.derive_device_key) and `device_key` holds it for the hub connection.
"""

import asyncio
import json

from tether import log
from tether.azure.exceptions import (
    ClientError,
    ConnectionFailedError,
    CredentialError,
    OperationTimeout,
    ServiceError,
)
from tether.azure.models import RegistrationResult, state_from_json
from tether.compat import ticks_diff, ticks_ms

_log = log.getLogger("azure.dps")

API_VERSION = "2019-03-31"
_RES = "$dps/registrations/res/"


class ProvisioningDeviceClient:
    RETRY_MIN_S = 1
    RETRY_MAX_S = 30
    FIRST_POLL_S = 2  # a 202 without retry-after: poll after this (the SDK's first poll)
    RETRIES = 6  # 429 / 5xx / 202 without operationId in a row
    TIMEOUT_S = 180

    def __init__(
        self,
        provisioning_host,
        registration_id,
        id_scope,
        symmetric_key=None,
        x509=None,
        server_verification_cert=None,
        gateway_hostname=None,
        keep_alive=60,
        sastoken_ttl=3600,
        port=8883,
        group=False,
    ):
        if symmetric_key is None and x509 is None:
            raise ValueError("a symmetric key or an X509 is needed")
        if group and symmetric_key is not None:
            from tether.sas import derive_device_key

            symmetric_key = derive_device_key(symmetric_key, registration_id)
        self.provisioning_host = provisioning_host
        self.registration_id = registration_id
        self.id_scope = id_scope
        self.device_key = symmetric_key
        self._x509 = x509
        self._ca = server_verification_cert
        self._host = gateway_hostname or provisioning_host
        self.keep_alive = keep_alive
        self.sastoken_ttl = sastoken_ttl
        self.port = port or 8883
        self.provisioning_payload = None
        self.tls = True  # tests against a plain scripted broker set False
        self.open_connection = None  # test hook, as on the cloud base
        # A receive buffer to borrow (bytearray of 4096 bytes or more): the firmware profile
        # lends the hub client's, allocated while the heap was young and idle until the hub
        # connects, so a fragmented heap need not find 4 KB in one piece for DPS.
        self.buffer = None
        self.counters = {"polls": 0, "retries": 0, "bad_messages": 0}
        self._replies = []
        self._ev = None
        self._rid = 0

    @classmethod
    def create_from_symmetric_key(
        cls, provisioning_host, registration_id, id_scope, symmetric_key, **kwargs
    ):
        return cls(provisioning_host, registration_id, id_scope, symmetric_key, **kwargs)

    @classmethod
    def create_from_x509_certificate(cls, provisioning_host, registration_id, id_scope, x509, **kwargs):  # fmt: skip  # noqa: E501
        return cls(provisioning_host, registration_id, id_scope, x509=x509, **kwargs)

    # -- connection --------------------------------------------------------------------

    def _login(self):
        user = "%s/registrations/%s/api-version=%s&ClientVersion=tether-azure%%2F1.0" % (
            self.id_scope, self.registration_id, API_VERSION,
        )  # fmt: skip
        if self.device_key is None:
            return user, None
        from tether import sas
        from tether.hal.clock import unix_time

        token = sas.dps_token(
            self.id_scope, self.registration_id, self.device_key, unix_time() + self.sastoken_ttl
        )
        return user, token

    def _tls(self):
        if not self.tls:
            return None
        from tether.azure.common import tls_context_once

        return tls_context_once(self._ca, self._x509)  # the hub's roots and X.509 rules

    def _on_message(self, topic, payload, retain=False, qos=0):
        self._replies.append((bytes(topic), bytes(payload)))
        if self._ev is not None:
            self._ev.set()

    async def _mqtt(self):
        from tether.mqtt import MQTTClient

        user, password = self._login()
        kw = {}
        if self.open_connection is not None:
            kw["open_connection"] = self.open_connection
        m = MQTTClient(
            self.registration_id,
            self._host,
            self.port,
            user=user,
            password=password,
            keepalive=self.keep_alive,
            ssl=self._tls(),
            server_hostname=self._host,
            max_packet=4096,
            on_message=self._on_message,
            bytes_topics=True,
            buffer=self.buffer,
            **kw,
        )
        try:
            await m.connect()
        except Exception as exc:
            from tether.azure.common import refused

            raise refused(exc)
        await m.subscribe(_RES + "#", 1)
        return m

    # -- registration ------------------------------------------------------------------

    async def register(self):
        """Register with DPS; -> RegistrationResult. Raises CredentialError (401 or a refused
        login), ClientError ("failed", other 4xx), ServiceError (429/5xx too often),
        OperationTimeout (TIMEOUT_S), ConnectionFailedError (no connection)."""
        self._ev = asyncio.Event()
        self._replies = []
        m = await self._mqtt()
        try:
            return await self._register(m)
        finally:
            try:
                await m.disconnect()
            except Exception:
                pass

    async def shutdown(self):
        pass  # each register() closes its own connection

    def _send_register(self, m):
        body = {"payload": self.provisioning_payload, "registrationId": self.registration_id}
        t = "$dps/registrations/PUT/iotdps-register/?$rid=%s" % self._new_rid()
        return m.publish(t, json.dumps(body), 1)

    def _send_poll(self, m, op):
        t = "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=%s&operationId=%s"
        return m.publish(t % (self._new_rid(), op), b" ", 1)

    def _new_rid(self):
        self._rid += 1
        return str(self._rid)

    async def _register(self, m):
        t0 = ticks_ms()
        retries = 0
        await self._send_register(m)
        while True:
            status, params, body = await self._reply(m, t0)
            if status in (200, 202):
                doc = body if isinstance(body, dict) else {}
                op = doc.get("operationId")
                st = doc.get("status")
                if status == 200 or st not in (None, "assigning"):
                    return self._result(doc, op, st)
                await asyncio.sleep(self._retry_after(params, None))
                if not op:  # nothing to poll: register again, counted as a retry
                    retries = self._retry(retries, "202 without operationId")
                    await self._send_register(m)
                    continue
                self.counters["polls"] += 1
                await self._send_poll(m, op)
            elif status == 429 or status >= 500:
                retries = self._retry(retries, "status %d" % status)
                await asyncio.sleep(self._retry_after(params, min(2**retries, self.RETRY_MAX_S)))
                await self._send_register(m)
            elif status == 401:
                raise CredentialError("DPS refused the registration (401): %s" % _msg(body))
            else:
                raise ClientError("DPS answered %d: %s" % (status, _msg(body)))

    def _retry(self, n, why):
        n += 1
        self.counters["retries"] += 1
        if n > self.RETRIES:
            raise ServiceError("DPS: %s, %d times" % (why, n - 1))
        _log.warning("DPS: %s, retrying", why)
        return n

    def _retry_after(self, params, default):
        try:
            s = int(params.get("retry-after"))
        except (TypeError, ValueError):
            s = None
        if default is not None and (s is None or s < default):
            s = default
        if s is None:
            s = self.FIRST_POLL_S
        return max(self.RETRY_MIN_S, min(s, self.RETRY_MAX_S))

    def _result(self, doc, op, st):
        if st == "failed":
            raise ClientError("DPS registration failed: %s" % _msg(doc.get("registrationState")))
        state = state_from_json(doc.get("registrationState"))
        return RegistrationResult(op, st, state)

    async def _reply(self, m, t0):
        """The next reply meant for this client: (status, params, parsed body or None)."""
        from tether.azure.bag import status_rid

        rid = str(self._rid)
        while True:
            while self._replies:
                topic, payload = self._replies.pop(0)
                try:
                    status, got, params = status_rid(topic, _RES)
                except ValueError:
                    self.counters["bad_messages"] += 1
                    continue
                if got != rid:  # a late answer to an earlier request
                    self.counters["bad_messages"] += 1
                    continue
                try:
                    body = json.loads(payload) if payload.strip() else None
                except ValueError:
                    self.counters["bad_messages"] += 1
                    body = None
                return status, params, body
            left = self.TIMEOUT_S * 1000 - ticks_diff(ticks_ms(), t0)
            if left <= 0:
                raise OperationTimeout("DPS: no registration in %d s" % self.TIMEOUT_S)
            if not m.connected:
                raise ConnectionFailedError("DPS closed the connection")
            self._ev.clear()
            try:
                await asyncio.wait_for(self._ev.wait(), min(left, 1000) / 1000)
            except asyncio.TimeoutError:
                pass


def _msg(doc):
    if isinstance(doc, dict):
        for k in ("errorMessage", "message", "status"):
            if doc.get(k):
                code = doc.get("errorCode")
                return "%s%s" % (doc[k], " (%s)" % code if code else "")
    return "no details"
