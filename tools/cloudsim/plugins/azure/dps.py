"""The Device Provisioning Service over MQTT (protocols.md §2.6, §2.9 "DPS", §2.11).

Enrollments: individual (a symmetric key, or X.509: CA-signed with CN = registration id,
or self-signed by thumbprint) and groups (a symmetric group key, from which each device's
key is derived; or an X.509 CA). A registration is: PUT iotdps-register -> 202 with an
operationId and retry-after, then polls answered 202 `azure_dps_pending_polls` times, then
200 "assigned" with assignedHub = the local hub, which now knows the device (the same key,
the derived key, or the certificate).
"""

import json
import time
import uuid

from ...core.plugin import Acl, Refuse
from ...core.registry import Device
from . import certs, sas_check

CLOUD = "azure"
_REGISTER = "$dps/registrations/PUT/iotdps-register/"
_STATUS = "$dps/registrations/GET/iotdps-get-operationstatus/"


class Enrollment:
    def __init__(self, registration_id, key=None, x509=None, device_id=None, initial_twin=None):
        self.registration_id = registration_id
        self.key = key
        self.x509 = x509  # None, "ca" or a set of thumbprints
        self.device_id = device_id or registration_id
        self.initial_twin = initial_twin  # desired properties a new device starts with


class GroupEnrollment:
    def __init__(self, group_id, key=None, x509_ca=None):
        self.group_id = group_id
        self.key = key
        self.x509_ca = x509_ca  # DER of the CA (None: a symmetric-key group)


class DpsClient(Device):
    """One DPS connection's identity (not on the dashboard; registrations are)."""

    def __init__(self, registration_id, enrollment, key=None, group=None):
        super().__init__(registration_id, "azure-dps")
        self.enrollment = enrollment
        self.group = group
        self.key = key  # the key the device proved (derived for a group)


class DpsSide:
    def __init__(self, plugin):
        self.p = plugin
        self.enrollments = {}  # registration id -> Enrollment
        self.groups = {}  # group id -> GroupEnrollment
        self.registrations = {}  # registration id -> dict (the DPS record)
        self.operations = {}  # operationId -> registration id

    @property
    def front(self):
        return self.p.front

    # -- CONNECT ----------------------------------------------------------------------------

    def authenticate(self, s):
        scope, reg, tail = _split_username(s.username or "")
        if scope is None or not tail.startswith("api-version="):
            raise Refuse(
                "username %r is not {scope}/registrations/{id}/api-version=..." % (s.username,), 4
            )
        if scope != self.p.id_scope:
            raise Refuse("unknown ID scope %r" % scope)
        if reg != s.client_id:
            raise Refuse("client id %r is not the registration id %r" % (s.client_id, reg), 2)
        s.key = "azure-dps|" + reg  # never takes over the same id's hub session
        if s.peer_cert is not None:
            return self._x509(s, reg)
        if not s.password:
            raise Refuse("no SAS token and no client certificate")
        resources = ["%s/registrations/%s" % (scope, reg)]
        skn = (None, "registration")  # the SDK omits skn; the docs include it
        indiv = self.enrollments.get(reg)
        candidates = []
        if indiv is not None and indiv.key:
            candidates.append((indiv.key, indiv, None))
        for group in self.groups.values():
            if group.key:
                candidates.append((sas_check.derive_key(group.key, reg), None, group))
        reason = "no enrollment for %r" % reg
        for key, enrollment, group in candidates:
            try:
                sas_check.check(s.password, [key], resources, skn)
            except sas_check.SasError as exc:
                reason = "SAS: %s" % exc
                continue
            s.auth = "sas" if group is None else "sas-group"
            return DpsClient(reg, enrollment, key, group)
        raise Refuse(reason)

    def _x509(self, s, reg):
        der = s.peer_cert
        indiv = self.enrollments.get(reg)
        if indiv is not None and isinstance(indiv.x509, set):
            if certs.thumbprints(der) & indiv.x509:
                s.auth = "x509-thumbprint"
                return DpsClient(reg, indiv)
            raise Refuse("certificate thumbprint is not the enrollment's")
        if certs.common_name(der) != reg:
            raise Refuse("certificate CN %r is not the registration id" % certs.common_name(der))
        if certs.is_self_signed(der):
            raise Refuse("self-signed certificate without a thumbprint enrollment")
        if indiv is not None and indiv.x509 == "ca":
            s.auth = "x509-ca"
            return DpsClient(reg, indiv)
        issuer = certs.issuer_name(der)
        for group in self.groups.values():
            if group.x509_ca is not None and certs.subject_name(group.x509_ca) == issuer:
                s.auth = "x509-ca-group"
                return DpsClient(reg, None, group=group)
        raise Refuse("no X.509 enrollment for %r" % reg)

    def acl(self, s):
        return Acl(
            publish=[_REGISTER + "#", _STATUS + "#"], subscribe=["$dps/registrations/res/#"]
        )

    # -- publishes --------------------------------------------------------------------------

    def on_publish(self, s, topic, payload, qos, retain):
        reg = s.device.id
        if qos == 2:
            self.front.event(reg, "refused", "QoS 2 publish on %s: disconnected" % topic, CLOUD)
            s.transport.abort()
            return
        query = _query(topic.rsplit("/", 1)[-1])
        rid = query.get("$rid")
        if rid is None:
            self.front.event(reg, "bad-request", "no $rid on %s" % topic, CLOUD)
            return
        errors = self.front.knobs.azure_dps_errors
        if errors:
            status = errors.pop(0)
            self.front.event(reg, "dps-error", "%d (knob)" % status, CLOUD)
            body = {"errorCode": status * 1000 + 1, "message": "emulated error (knob)"}
            return self._reply(s, status, rid, body, retry_after=1)
        if topic.startswith(_REGISTER):
            self._register(s, rid, payload)
        else:
            self._status(s, rid, query.get("operationId"))

    def _reply(self, s, status, rid, body, retry_after=None):
        # "?$rid=..&retry-after=.." in this order with a literal "$": the SDK's parser
        # splits the topic on "$" (protocols.md §2.11).
        topic = "$dps/registrations/res/%d/?$rid=%s" % (status, rid)
        if retry_after is not None:
            topic += "&retry-after=%d" % retry_after
        self.front.reply("dps", s.device.id, topic, json.dumps(body).encode(), to=s)

    def _register(self, s, rid, payload):
        reg = s.device.id
        try:
            body = json.loads(payload or b"{}")
            if not isinstance(body, dict) or body.get("registrationId") != reg:
                raise ValueError("registrationId is not %r" % reg)
        except ValueError as exc:
            self.front.event(reg, "bad-payload", "register: %s" % exc, CLOUD)
            return self._reply(s, 400, rid, {"errorCode": 400004, "message": str(exc)[:200]})
        op = "4.%s.%s" % (uuid.uuid4().hex[:16], uuid.uuid4())
        record = {
            "registrationId": reg,
            "operationId": op,
            "status": "assigning",
            "polls": 0,
            "payload": body.get("payload"),
            "auth": s.auth,
            "t": time.time(),
        }
        with self.front.registry.lock:
            self.registrations[reg] = record
            self.operations[op] = reg
        self.front.event(reg, "dps-register", "operation %s" % op[:20], CLOUD)
        retry = self.front.knobs.azure_dps_retry_after
        self._reply(s, 202, rid, {"operationId": op, "status": "assigning"}, retry_after=retry)

    def _status(self, s, rid, op):
        reg = s.device.id
        record = self.registrations.get(reg)
        if record is None or self.operations.get(op) != reg:
            return self._reply(s, 404, rid, {"errorCode": 404201, "message": "no operation"})
        if record["status"] == "assigning":
            if record["polls"] < self.front.knobs.azure_dps_pending_polls:
                record["polls"] += 1
                retry = self.front.knobs.azure_dps_retry_after
                body = {"operationId": op, "status": "assigning"}
                return self._reply(s, 202, rid, body, retry_after=retry)
            self._assign(s.device, record)
        self._reply(s, 200, rid, _result(record))

    def _assign(self, client, record):
        indiv, group = client.enrollment, client.group
        device_id = indiv.device_id if indiv is not None else client.id
        if client.key:
            mode = {"key": client.key}
        elif indiv is not None and isinstance(indiv.x509, set):
            mode = {"x509": set(indiv.x509)}
        else:
            mode = {"x509": "ca"}
        created = self.p.ensure_device(device_id, **mode)
        if created and indiv is not None and indiv.initial_twin:
            created.twin.patch_desired(indiv.initial_twin)
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
        with self.front.registry.lock:
            record.update(status="assigned", deviceId=device_id, assignedHub=self.p.assigned_hub)
            record.update(substatus="initialAssignment", createdDateTimeUtc=now)
            record["group"] = group.group_id if group is not None else None
            self.front.registry.notify()
        self.front.event(
            client.id, "dps-assigned", "%s on %s" % (device_id, record["assignedHub"]), CLOUD
        )


def _result(record):
    state = {
        "registrationId": record["registrationId"],
        "createdDateTimeUtc": record["createdDateTimeUtc"],
        "assignedHub": record["assignedHub"],
        "deviceId": record["deviceId"],
        "status": "assigned",
        "substatus": record["substatus"],
        "lastUpdatedDateTimeUtc": record["createdDateTimeUtc"],
        "etag": '"%s"' % record["operationId"][-12:],
    }
    return {"operationId": record["operationId"], "status": "assigned", "registrationState": state}


def _split_username(username):
    """'{scope}/registrations/{reg}/api-version=...' -> (scope, reg, 'api-version=...')."""
    parts = username.split("/", 3)
    if len(parts) != 4 or parts[1] != "registrations" or not parts[0] or not parts[2]:
        return None, None, ""
    return parts[0], parts[2], parts[3]


def _query(level):
    out = {}
    for pair in (level[1:] if level.startswith("?") else "").split("&"):
        name, _, value = pair.partition("=")
        if name:
            out[name] = value
    return out
