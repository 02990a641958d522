"""tether.azure's firmware profile and DPS cache (both interpreters): settings refused with
a message saying what to fix, a connection string, the group key derived on the device,
and the assignment cache written by rename, ignored when stale or corrupt."""

from harness import raises
from tether.azure import cache
from tether.azure.profile import make_client

KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
GROUP = "8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw=="
REG = "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6"
TMP = "/tmp/tether_dt_azure_cache.json"


def test_cache_by_rename_and_stale_entries_ignored():
    cache.clear(TMP)
    assert cache.load(TMP, "s", "r") is None
    doc = {"id_scope": "s", "registration_id": "r", "assigned_hub": "h", "device_id": "d"}
    cache.save(TMP, doc)
    cache.save(TMP, doc)  # over an existing file
    assert cache.load(TMP, "s", "r") == doc
    assert cache.load(TMP, "other", "r") is None and cache.load(TMP, "s", "x") is None
    with open(TMP, "w") as f:
        f.write('{"id_scope": "s", "regis')  # a torn write: ignored, provision again
    assert cache.load(TMP, "s", "r") is None
    cache.clear(TMP)


def test_profile_settings():
    raises(ValueError, make_client, {"cloud": "azure"})
    raises(ValueError, make_client, {"cloud": "azure", "_secrets": {"symmetric_key": KEY}})
    cs = "HostName=h.azure-devices.net;DeviceId=d1;SharedAccessKey=%s;GatewayHostName=gw" % KEY
    c = make_client({"cloud": "azure", "_secrets": {"connection_string": cs}})
    assert (c.hostname, c.device_id, c.server) == ("h.azure-devices.net", "d1", "gw")
    cache.clear(TMP)
    settings = {
        "cloud": "azure",
        "azure": {"id_scope": "0ne1", "registration_id": REG, "group": True, "cache": TMP},
        "_secrets": {"symmetric_key": GROUP},
    }
    c = make_client(settings)
    assert c.assignment is None and c._key == "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc="
    assert [s[0] for s in c.session.stages][0] == "dps"
    cache.save(
        TMP,
        {
            "id_scope": "0ne1",
            "registration_id": REG,
            "assigned_hub": "hub.net",
            "device_id": "dev9",
        },
    )
    c = make_client(settings)
    assert (c.hostname, c.device_id, c.client_id) == ("hub.net", "dev9", "dev9")
    assert c._events == b"devices/dev9/messages/events/"
    cache.clear(TMP)
