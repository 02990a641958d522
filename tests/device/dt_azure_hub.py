"""tether.azure's hub client on the wire (both interpreters), against a scripted hub: the
CONNECT of the SDK, lazy subscriptions, telemetry topics, twin correlation by $rid, desired
properties reconciled by $version across a reconnect, direct methods answered by a
coroutine handler, C2D with properties, and the hostile corpus of issue 12: each case is
counted, the connection stays where MQTT allows it, and a method call right after is
answered."""

import asyncio
import json

from azure_broker import AzureBroker, hub_client, until
from harness import run
from tether.azure import ClientError, Message, MethodResponse

HOST = "myhub.azure-devices.net"
C2D = "devices/dev1/messages/devicebound/#"


async def _start(**kw):
    broker = AzureBroker()
    srv = asyncio.create_task(broker.serve())
    c = hub_client(broker, **kw)
    await c.connect()
    return broker, srv, c


async def _stop(c, srv):
    await c.shutdown()
    srv.cancel()


def test_connect_and_telemetry_wire():
    async def main():
        broker, srv, c = await _start()
        cid, user, password, clean = broker.logins[0]
        assert cid == "dev1" and not clean  # CleanSession 0, as the SDK
        assert user.startswith(HOST + "/dev1/?api-version=2019-10-01&DeviceClientType=")
        assert password.startswith(
            "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdev1&sig="
        )
        assert "&skn=" not in password and "&se=" in password
        assert broker.subs == []  # lazy: nothing used yet
        m = Message('{"t": 1}', message_id="m0", content_type="application/json")
        m.custom_properties["alert"] = "hi & lo"
        await c.send_message(m)
        await c.send_message("plain")
        assert broker.ups("devices/") == [
            (
                "devices/dev1/messages/events/%24.mid=m0&%24.ct=application%2Fjson&alert=hi%20%26%20lo",
                b'{"t": 1}',
            ),
            ("devices/dev1/messages/events/", b"plain"),
        ]
        assert c.counters["telemetry"] == 2
        await _stop(c, srv)

    run(main())


def test_twin_get_and_patch_correlated_by_rid():
    async def main():
        broker, srv, c = await _start()
        broker.twin["desired"] = {"rate": 5, "$version": 4}
        doc = await c.get_twin()
        assert doc["desired"] == {"rate": 5, "$version": 4}
        assert broker.subs == ["$iothub/twin/res/#"]
        await c.patch_twin_reported_properties({"fw": "1.0", "gone": None})
        gets = broker.ups("$iothub/twin/GET/")
        patches = broker.ups("$iothub/twin/PATCH/properties/reported/")
        assert gets[0][1] == b" " and json.loads(patches[0][1]) == {"fw": "1.0", "gone": None}
        assert broker.twin["reported"]["$version"] == 2
        # 429 and 500 are ClientError at once (the SDK's rule); the connection stays.
        broker.twin_status = [429, 500]
        for _ in range(2):
            try:
                await c.get_twin()
                raise AssertionError("no ClientError")
            except ClientError:
                pass
        assert c.connected and c.counters["twin_errors"] == 2
        assert len(broker.subs) == 1  # subscribed once
        await _stop(c, srv)

    run(main())


def test_desired_reconciled_by_version_across_reconnect():
    async def main():
        broker = AzureBroker()
        srv = asyncio.create_task(broker.serve())
        broker.twin["desired"] = {"a": 1, "$version": 2}
        c = hub_client(broker)
        got = []
        c.on_twin_desired_properties_patch_received = got.append  # before connect
        await c.connect()
        assert await until(lambda: len(got) == 1, 2000)
        assert got[0] == {"a": 1, "$version": 2}
        down = "$iothub/twin/PATCH/properties/desired/?$version="
        broker.down(down + "3", json.dumps({"b": 2, "$version": 3}))
        broker.down(down + "3", json.dumps({"b": 2, "$version": 3}))  # again: stale
        assert await until(lambda: len(got) == 2 and c.counters["stale_desired"] == 1, 2000)
        # Away: the version does not change -> no call; then it does -> the whole document.
        c.drop()
        assert await until(lambda: len(broker.logins) == 2 and c.connected, 3000)
        await asyncio.sleep(0.1)
        assert len(got) == 2
        broker.twin["desired"] = {"a": 1, "b": 2, "c": 3, "$version": 4}
        c.drop()
        assert await until(lambda: len(got) == 3, 3000)
        assert got[2] == {"a": 1, "b": 2, "c": 3, "$version": 4}
        # Resubscribed after each reconnect (the session may be gone).
        assert broker.subs.count("$iothub/twin/PATCH/properties/desired/#") == 3
        await _stop(c, srv)

    run(main())


def _method(broker, name, rid, body):
    broker.down("$iothub/methods/POST/%s/?$rid=%s" % (name, rid), body)


def test_methods_and_c2d():
    async def main():
        broker, srv, c = await _start()
        got = []

        async def on_method(req):
            got.append((req.name, req.payload))
            await c.send_method_response(
                MethodResponse.create_from_method_request(req, 200, {"ok": req.payload})
            )

        c.on_method_request_received = on_method
        c.on_message_received = got.append
        assert await until(lambda: len(broker.subs) == 2, 2000)
        assert broker.subs == ["$iothub/methods/POST/#", C2D]
        _method(broker, "blink", "r1", b'{"n": 2}')
        _method(broker, "noargs", "r2", b"")
        assert await until(lambda: len(broker.responses) == 2, 2000)
        assert broker.responses["r1"] == (200, b'{"ok": {"n": 2}}')
        assert broker.responses["r2"] == (200, b'{"ok": null}')
        broker.down(
            "devices/dev1/messages/devicebound/%24.mid=9&%24.ct=text%2Fplain&k=v%26w", b"hi"
        )
        assert await until(lambda: len(got) == 3, 2000)
        m = got[2]
        assert (m.data, m.message_id, m.content_type, m.custom_properties) == (
            b"hi", "9", "text/plain", {"k": "v&w"},
        )  # fmt: skip
        await _stop(c, srv)

    run(main())


def test_hostile_corpus_keeps_the_connection_and_methods_answered():
    async def main():
        broker, srv, c = await _start()
        seen = []

        async def on_method(req):  # a coroutine handler
            await c.send_method_response(MethodResponse(req.request_id, 200, req.name))

        c.on_method_request_received = on_method
        c.on_message_received = seen.append
        c.on_twin_desired_properties_patch_received = seen.append
        assert await until(lambda: len(broker.subs) == 4, 2000)
        bad0 = c.counters["bad_messages"]
        down = "$iothub/twin/PATCH/properties/desired/?$version=9"
        broker.down(down, b"not json")  # 1
        broker.down(down, b'{"no_version": 1}')  # 2
        broker.down(down, b'["a list"]')  # 3
        broker.down("$iothub/twin/res/200/?$rid=999", b"{}")  # 4: unknown $rid
        broker.down("$iothub/twin/res/oops/?$rid=1", b"{}")  # 5: not a status
        broker.down("$iothub/methods/POST/nobody/", b"{}")  # 6: no $rid
        _method(broker, "bad", "b1", b"{not json")  # 7: answered 400
        broker.down("devices/dev1/messages/devicebound/k=%ff", b"x")  # 8: bag not UTF-8
        broker.down("devices/dev1/messages/devicebound/", b"\xff\x00 binary")  # fine: opaque
        assert await until(lambda: c.counters["bad_messages"] - bad0 == 8, 3000), c.stats()
        assert broker.responses["b1"][0] == 400
        assert await until(lambda: len(seen) == 1, 2000) and seen[0].data == b"\xff\x00 binary"
        # A twin reply that is not JSON: get_twin raises ClientError, nothing else happens.
        broker.twin_auto = False
        t = asyncio.create_task(c.get_twin())
        assert await until(lambda: broker.ups("$iothub/twin/GET/"), 2000)
        rid = broker.ups("$iothub/twin/GET/")[-1][0].split("$rid=")[1]
        broker.down("$iothub/twin/res/200/?$rid=" + rid, b"<html>")
        try:
            await t
            raise AssertionError("no ClientError")
        except ClientError:
            pass
        # 300 KB C2D: over MAX_PACKET, drained without allocation, acknowledged.
        broker.down("devices/dev1/messages/devicebound/big=1", b"x" * 300000)
        _method(broker, "after", "a1", b"{}")
        assert await until(lambda: "a1" in broker.responses, 5000)
        assert broker.responses["a1"] == (200, b'"after"')
        assert c.connected and len(broker.logins) == 1
        assert c.stats()["mqtt_oversize_dropped"] == 1
        # A method name with wildcards is not a valid PUBLISH topic: MQTT closes the
        # connection; the client reconnects, resubscribes, and the next call is answered.
        _method(broker, "a+b#", "w1", b"{}")
        assert await until(lambda: len(broker.logins) == 2 and c.connected, 3000)
        _method(broker, "later", "a2", b"{}")
        assert await until(lambda: "a2" in broker.responses, 3000)
        assert "w1" not in broker.responses
        await _stop(c, srv)

    run(main(), 20)


def test_offline_telemetry_in_order_after_reconnect():
    async def main():
        broker, srv, c = await _start()
        broker.refuse = 3  # the hub is away: CONNACK 3 until further notice
        c.drop()
        assert await until(lambda: not c.connected, 1000)
        for i in range(5):
            await c.send_message(Message("m%d" % i))  # returns once queued
        assert c.counters["telemetry"] == 0
        broker.refuse = 0
        assert await until(lambda: c.counters["telemetry"] == 5, 3000)
        bodies = [p for t, p in broker.ups("devices/")]
        assert bodies == [b"m0", b"m1", b"m2", b"m3", b"m4"]
        await _stop(c, srv)

    run(main())


def test_sends_keep_their_order_and_one_cut_before_its_puback_goes_again_first():
    # Concurrent sends go out in call order, one at a time. A message whose PUBACK never
    # came (connection cut) stays at the head of the queue: it is sent again first after
    # the reconnect, and the send made while it was out follows it (QoS 1: at least once).
    async def main():
        broker, srv, c = await _start()
        await asyncio.gather(*[c.send_message("a%d" % i) for i in range(4)])
        assert [p for t, p in broker.ups("devices/")] == [b"a0", b"a1", b"a2", b"a3"]
        broker.unacked = 1
        first = asyncio.create_task(c.send_message("b0"))
        assert await until(lambda: len(broker.ups("devices/")) == 5, 2000)
        second = asyncio.create_task(c.send_message("b1"))
        await asyncio.sleep(0.05)
        assert len(broker.ups("devices/")) == 5  # b1 waits while b0 is out
        broker.b.send_eof()  # b0 lost before its PUBACK
        await asyncio.wait_for(first, 5)
        await asyncio.wait_for(second, 5)
        assert await until(lambda: c.counters["telemetry"] == 6, 3000)
        bodies = [p for t, p in broker.ups("devices/")]
        assert bodies == [b"a0", b"a1", b"a2", b"a3", b"b0", b"b0", b"b1"], bodies
        assert len(broker.logins) == 2 and c.counters["dropped"] == 0
        await _stop(c, srv)

    run(main())
