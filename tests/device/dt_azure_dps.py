"""tether.azure's DPS client on the wire (both interpreters), against a scripted DPS: the
SDK's username and SAS, the register body, polling on 202, hostile retry-after values
clamped, a 202 without operationId and a 429 re-sent, 401 and "failed" as clear errors,
and the group-enrollment key derived on the device (Microsoft's test vector)."""

import asyncio
import json

from azure_broker import KEY, AzureBroker, params_of
from harness import run
from tether.azure import ClientError, CredentialError
from tether.azure.aio import ProvisioningDeviceClient
from tether.compat import ticks_diff, ticks_ms

RES = "$dps/registrations/res/"
ASSIGNED = {
    "operationId": "op1",
    "status": "assigned",
    "registrationState": {
        "registrationId": "dev1",
        "assignedHub": "myhub.azure-devices.net",
        "deviceId": "dev1",
        "status": "assigned",
        "substatus": "initialAssignment",
    },
}


def _client(broker, key=KEY, **kw):
    p = ProvisioningDeviceClient.create_from_symmetric_key(
        "dps.test", "dev1", "0ne00000000", key, **kw
    )
    p.tls = False
    p.open_connection = broker.open_connection
    p.RETRY_MIN_S = 0
    p.RETRY_MAX_S = 0.05  # a hostile retry-after must end up here, not in 10^9 s
    p.FIRST_POLL_S = 0
    return p


async def _script(broker, replies):
    """Answer each register/poll publish with the next (status, params, body)."""
    n = 0
    while replies:
        ups = [u for u in broker.up if u[0].startswith("$dps/")]
        if len(ups) > n:
            rid = params_of(ups[n][0])["$rid"]
            status, extra, body = replies.pop(0)
            broker.down(RES + "%d/?$rid=%s%s" % (status, rid, extra), json.dumps(body))
            n += 1
        await asyncio.sleep(0.005)


def test_register_polls_and_survives_hostile_replies():
    async def main():
        broker = AzureBroker()
        srv = asyncio.create_task(broker.serve())
        p = _client(broker)
        p.provisioning_payload = {"modelId": "dtmi:x;1"}
        replies = [
            (202, "&retry-after=1000000000", {"status": "assigning"}),  # no operationId
            (429, "&retry-after=1000000000", {}),
            (202, "&retry-after=1000000000", {"operationId": "op1", "status": "assigning"}),
            (202, "&retry-after=-5", {"operationId": "op1", "status": "assigning"}),
            (200, "", ASSIGNED),
        ]
        sc = asyncio.create_task(_script(broker, replies))
        t0 = ticks_ms()
        r = await p.register()
        assert ticks_diff(ticks_ms(), t0) < 3000
        assert r.status == "assigned" and r.operation_id == "op1"
        st = r.registration_state
        assert (st.assigned_hub, st.device_id, st.sub_status) == (
            "myhub.azure-devices.net", "dev1", "initialAssignment",
        )  # fmt: skip
        cid, user, password, clean = broker.logins[0]
        assert cid == "dev1" and clean
        assert user.startswith("0ne00000000/registrations/dev1/api-version=2019-03-31&")
        assert password.startswith("SharedAccessSignature sr=0ne00000000%2Fregistrations%2Fdev1&")
        assert password.endswith("&skn=registration")
        assert broker.subs == ["$dps/registrations/res/#"]
        ups = [t for t, b in broker.up if t.startswith("$dps/")]
        puts = [t for t in ups if "/PUT/iotdps-register/" in t]
        polls = [t for t in ups if "/GET/iotdps-get-operationstatus/" in t]
        assert len(puts) == 3 and len(polls) == 2 and "operationId=op1" in polls[0]
        body = json.loads([b for t, b in broker.up if t == puts[0]][0])
        assert body == {"payload": {"modelId": "dtmi:x;1"}, "registrationId": "dev1"}
        assert p.counters["retries"] == 2 and p.counters["polls"] == 2
        assert p._retry_after({"retry-after": "1000000000"}, None) == 0.05
        sc.cancel()
        srv.cancel()

    run(main())


def _fails(replies, exc_type, words):
    async def main():
        broker = AzureBroker()
        srv = asyncio.create_task(broker.serve())
        p = _client(broker)
        sc = asyncio.create_task(_script(broker, replies))
        try:
            await p.register()
            raise AssertionError("no %s" % exc_type.__name__)
        except exc_type as exc:
            assert words in str(exc), str(exc)
        sc.cancel()
        srv.cancel()

    run(main())


def test_401_is_a_credential_error():
    _fails([(401, "", {"errorCode": 401002, "message": "Unauthorized"})], CredentialError, "401")


def test_failed_is_a_client_error():
    failed = {
        "operationId": "o",
        "status": "failed",
        "registrationState": {"status": "failed", "errorMessage": "Custom allocation failed"},
    }
    _fails([(200, "", failed)], ClientError, "Custom allocation failed")


def test_too_many_429_is_a_service_error():
    from tether.azure import ServiceError

    _fails([(429, "", {})] * 8, ServiceError, "429")


def test_group_key_derived_on_the_device():
    group = (
        "8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw=="
    )
    p = ProvisioningDeviceClient(
        "h", "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6", "s", group, group=True
    )
    assert p.device_key == "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc="


def test_refused_login_is_a_credential_error():
    async def main():
        broker = AzureBroker()
        broker.refuse = 5
        srv = asyncio.create_task(broker.serve())
        try:
            await _client(broker).register()
            raise AssertionError("no CredentialError")
        except CredentialError:
            pass
        srv.cancel()

    run(main())
