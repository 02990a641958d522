"""tether.azure's property bags, reply topics, connection strings and models (both
interpreters): the bytes azure-iot-device 2.14 writes (protocols.md §2.11), C2D bags in the
`$.` and `%24.` forms, and malformed input refused with ValueError."""

from harness import raises
from tether.azure import bag
from tether.azure.device import parse_connection_string
from tether.azure.models import Message, MethodRequest, MethodResponse, state_from_json


def test_telemetry_bag_is_the_sdks():
    m = Message('{"t": 1}', message_id="m0", content_encoding="utf-8")
    m.content_type = "application/json"
    m.custom_properties["seq"] = "0"
    m.custom_properties["alert"] = "hi & lo"
    # System keys %24.-encoded in the SDK's order, custom ones sorted, %20 not +.
    want = "%24.mid=m0&%24.ct=application%2Fjson&%24.ce=utf-8&alert=hi%20%26%20lo&seq=0"
    assert bag.encode(m) == want
    assert bag.encode(Message("x")) == ""
    only = Message("x")
    only.custom_properties = {"b": 2, "a/b": "é"}
    assert bag.encode(only) == "a%2Fb=%C3%A9&b=2"


def test_duplicate_keys_after_str_are_refused():
    m = Message("x")
    m.custom_properties = {1: "a", "1": "b"}
    raises(ValueError, bag.encode, m)


def test_c2d_bag_in_both_forms():
    for form in ("$.", "%24."):
        b = (
            form
            + "mid=42&"
            + form
            + "ct=text%2Fplain&"
            + form
            + "to=%2Fdevices%2Fd&color=red%20%26%20blue&flag&empty="
        )
        m = bag.decode(b.encode(), Message(b"hi"))
        assert m.message_id == "42" and m.content_type == "text/plain"
        assert m.custom_properties == {"color": "red & blue", "flag": None, "empty": ""}
    m = bag.decode(b"iothub-ack=full&%24.ce=utf-8", Message(b""))
    assert m.ack == "full" and m.content_encoding == "utf-8" and m.custom_properties == {}
    raises(ValueError, bag.decode, b"k=%ff%fe", Message(b""))  # not UTF-8


def test_reply_topics():
    s, rid, p = bag.status_rid(b"$iothub/twin/res/204/?$rid=7&$version=3", "$iothub/twin/res/")
    assert (s, rid, p["$version"]) == (204, "7", "3")
    s, rid, p = bag.status_rid(
        "$dps/registrations/res/202/?$rid=1&retry-after=3", "$dps/registrations/res/"
    )
    assert (s, rid, p["retry-after"]) == (202, "1", "3")
    assert bag.status_rid(b"$iothub/twin/res/200/?%24rid=9", "$iothub/twin/res/")[1] == "9"
    raises(ValueError, bag.status_rid, b"$iothub/twin/res/abc/?$rid=1", "$iothub/twin/res/")
    raises(ValueError, bag.status_rid, b"other/200/?$rid=1", "$iothub/twin/res/")
    assert bag.method_of(b"$iothub/methods/POST/reboot/?$rid=5") == ("reboot", "5")
    raises(ValueError, bag.method_of, b"$iothub/methods/POST/reboot/")
    raises(ValueError, bag.method_of, b"$iothub/methods/POST//?$rid=1")


def test_connection_strings():
    cs = parse_connection_string(
        "HostName=h.azure-devices.net;DeviceId=d1;SharedAccessKey=abc==;GatewayHostName=gw"
    )
    assert cs["SharedAccessKey"] == "abc==" and cs["GatewayHostName"] == "gw"
    raises(ValueError, parse_connection_string, "HostName=h;SharedAccessKey=k")
    raises(ValueError, parse_connection_string, "HostName=h;DeviceId=d")
    raises(ValueError, parse_connection_string, "HostName=h;DeviceId=d;junk")
    assert parse_connection_string("HostName=h;DeviceId=d;x509=true")["x509"] == "true"


def test_models():
    req = MethodRequest("3", "blink", {"n": 2})
    r = MethodResponse.create_from_method_request(req, 200, {"ok": True})
    assert (r.request_id, r.status, r.payload) == ("3", 200, {"ok": True})
    st = state_from_json(
        {"assignedHub": "h.net", "deviceId": "d", "substatus": "initialAssignment"}
    )
    assert (st.assigned_hub, st.device_id, st.sub_status, st.substatus) == (
        "h.net", "d", "initialAssignment", "initialAssignment",
    )  # fmt: skip
    assert state_from_json(None) is None and state_from_json("x") is None


def test_lazy_package():
    import tether.azure as az

    assert az.Message is Message
    assert issubclass(az.CredentialError, az.ClientError)
    assert issubclass(az.ConnectionFailedError, az.ClientError)


def test_sync_wrapper_delegates():
    from tether.azure import IoTHubDeviceClient

    key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    c = IoTHubDeviceClient.create_from_symmetric_key(key, "h.azure-devices.net", "d1", port=1)
    seen = []
    c.on_message_received = seen.append  # lands on the asyncio client
    assert c._client.on_message_received == seen.append
    assert c.device_id == "d1" and c.port == 1
    c.update(1)
