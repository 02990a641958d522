"""tether_firmware's settings, secrets, board defaults and safe-mode checks, in-process."""

import json
import sys
import types

import pytest
from mpy import ROOT

sys.path.insert(0, str(ROOT / "firmware"))
sys.path.insert(0, str(ROOT / "lib"))
import tether_firmware as fw  # noqa: E402


def _write(tmp_path, settings, secrets=None, secrets_name="secrets.json"):
    (tmp_path / "settings.json").write_text(json.dumps(settings))
    if secrets is not None:
        text = secrets if isinstance(secrets, str) else json.dumps(secrets)
        (tmp_path / secrets_name).write_text(text)
    return str(tmp_path / "settings.json")


def test_secrets_json_wins_over_secrets_py(tmp_path):
    path = _write(tmp_path, {"device_id": "d"}, {"wifi_ssid": "json-net"})
    (tmp_path / "secrets.py").write_text('WIFI_SSID = "py-net"\n')
    s = fw.load_settings(path)
    assert s["_secrets"]["wifi_ssid"] == "json-net" and s["_dir"] == str(tmp_path)


def test_secrets_py_names_of_the_original_client(tmp_path):
    py = 'WIFI_SSID = "n"\nWIFI_PASS = "p"\nDEVICE_ID = "dev"\nSECRET_KEY = "k"\nOTHER = 1\n'
    s = fw.load_settings(_write(tmp_path, {}, py, "secrets.py"))
    assert s["_secrets"] == {
        "wifi_ssid": "n",
        "wifi_password": "p",
        "device_id": "dev",
        "secret_key": "k",
    }
    assert s["device_id"] == "dev"


def test_a_named_secrets_file_is_used(tmp_path):
    path = _write(tmp_path, {"device_id": "d", "secrets": "creds/s.json"})
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "s.json").write_text(json.dumps({"secret_key": "k"}))
    assert fw.load_settings(path)["_secrets"] == {"secret_key": "k"}


def test_errors_name_the_file_and_key_never_the_value(tmp_path):
    path = _write(tmp_path, {"device_id": "d"}, {"secret_key": 123456789})
    with pytest.raises(fw.SettingsError) as e:
        fw.load_settings(path)
    assert "secret_key" in str(e.value) and "123456789" not in str(e.value)
    path = _write(tmp_path, {"device_id": "d"}, "SECRET_KEY = 'abc' +\n", "secrets.py")
    (tmp_path / "secrets.json").unlink()
    with pytest.raises(fw.SettingsError) as e:
        fw.load_settings(path)
    assert "secrets.py" in str(e.value) and "abc" not in str(e.value)
    (tmp_path / "secrets.py").unlink()
    with pytest.raises(fw.SettingsError, match="device_id missing"):
        fw.load_settings(_write(tmp_path, {}))
    with pytest.raises(fw.SettingsError, match="not found"):
        fw.load_settings(str(tmp_path / "nope.json"))


def test_settings_path_from_argv_then_environment(monkeypatch):
    monkeypatch.delenv("TETHER_SETTINGS", raising=False)
    assert fw.settings_path(["main.py"]) == "settings.json"
    monkeypatch.setenv("TETHER_SETTINGS", "/x/s.json")
    assert fw.settings_path(["main.py"]) == "/x/s.json"
    assert fw.settings_path(["main.py", "/y.json"]) == "/y.json"


class _Pin:
    IN, PULL_UP = 1, 2
    level = 1
    made = []

    def __init__(self, name, mode, pull):
        _Pin.made.append((name, mode, pull))

    def value(self):
        return _Pin.level


def test_safe_mode_pin_held_low(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "machine", types.SimpleNamespace(Pin=_Pin))
    _Pin.made.clear()
    _Pin.level = 1
    assert fw.safe_mode_reason({}, {"safe_mode_pin": 0}, str(tmp_path)) is None
    _Pin.level = 0
    assert fw.safe_mode_reason({}, {"safe_mode_pin": 0}, str(tmp_path)) == "pin 0 held low"
    assert _Pin.made[-1] == (0, _Pin.IN, _Pin.PULL_UP)  # pulled up: a floating pin reads 1
    # the settings override the board's pin, and None turns it off
    assert (
        fw.safe_mode_reason({"safe_mode_pin": None}, {"safe_mode_pin": 0}, str(tmp_path)) is None
    )
    (tmp_path / "safe_mode").write_text("")
    assert fw.safe_mode_reason({}, {}, str(tmp_path)) == "file safe_mode present"


def test_board_defaults_apply_only_on_their_port(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tether_board.json").write_text(json.dumps({"port": "esp32", "wifi": "esp32"}))
    assert fw.load_board() == {}  # an ESP32 bundle on this host
    (tmp_path / "tether_board.json").write_text(json.dumps({"port": sys.platform, "wifi": "x"}))
    assert fw.load_board()["wifi"] == "x"


def test_basic_auth_needs_the_secret_key(tmp_path):
    s = fw.load_settings(_write(tmp_path, {"device_id": "d"}, {"wifi_ssid": "n"}))
    with pytest.raises(ValueError, match="secret_key missing"):
        fw.load_profile("arduino").make_client(s)
    f = fw.Firmware(s, {})
    with pytest.raises(fw.SettingsError, match="secret_key missing"):
        f.prepare()  # the firmware reports it as a settings error (exit status 2)


def test_the_cloud_is_named_in_the_settings_and_loaded_lazily(tmp_path):
    s = fw.load_settings(_write(tmp_path, {"device_id": "d"}, {"secret_key": "k"}))
    assert s["cloud"] == "arduino"  # the default
    for name in ("nimbus", "tether.arduino", ""):
        with pytest.raises(fw.SettingsError, match="unknown"):
            fw.load_settings(_write(tmp_path, {"device_id": "d", "cloud": name}))
    profile = fw.load_profile("arduino")
    assert profile.__name__ == "tether.arduino.profile" and callable(profile.make_client)


def test_a_known_cloud_missing_from_the_image_is_a_settings_error(monkeypatch):
    # "sap" is a cloud name settings may use; an image built without it has no profile.
    monkeypatch.setitem(sys.modules, "tether.sap", None)  # import fails like a missing one
    monkeypatch.setitem(sys.modules, "tether.sap.profile", None)  # even after an earlier load
    with pytest.raises(fw.SettingsError, match="not in this image"):
        fw.load_profile("sap")


def test_the_firmware_drives_the_client_through_the_seams_only(tmp_path):
    # A fake cloud profile: the firmware may use only the base's documented seams.
    class Client:
        def __init__(self):
            self.calls = []
            self.guard = self.store = None
            self.time_synced = False
            self.connected = False

        def set_diagnostics(self, interval_ms, cb):
            self.calls.append(("diagnostics", interval_ms))

        def add_stage(self, name, fn, timeout_ms, first=False):
            self.calls.append(("stage", name, first))

    made = []
    mod = types.ModuleType("tether.nimbus.profile")
    mod.make_client = lambda settings: made.append(settings) or Client()
    settings = {"device_id": "d", "cloud": "arduino", "wifi": {"driver": "none"}}
    settings["diagnostics"] = {"interval_s": 2}
    s = fw.load_settings(_write(tmp_path, settings, {"secret_key": "k"}))
    f = fw.Firmware(s, {})
    orig = fw.load_profile
    fw.load_profile = lambda cloud: mod
    try:
        f.prepare()
    finally:
        fw.load_profile = orig
    c = f.client
    assert made[0]["_dir"] == str(tmp_path) and made[0]["_secrets"] == {"secret_key": "k"}
    assert c.time_synced is True  # the firmware syncs the clock once; no time stage
    assert c.store is f.store and f.store is not None
    assert c.calls == [("diagnostics", 2000)]
    f.store.close()


class _Led:
    OUT = 3
    made = []

    def __init__(self, name, mode):
        self.values = []
        _Led.made.append((name, mode, self))

    def value(self, v):
        self.values.append(v)


def test_status_led_follows_the_cloud_connection(monkeypatch):
    monkeypatch.setitem(sys.modules, "machine", types.SimpleNamespace(Pin=_Led))
    for low, off, on in ((False, 0, 1), (True, 1, 0)):
        f = fw.Firmware({"device_id": "d"}, {"led_pin": "LED", "led_active_low": low})
        set_led = f.make_led()
        pin = _Led.made[-1][2]
        assert _Led.made[-1][:2] == ("LED", _Led.OUT) and pin.values == [off]
        set_led(True)
        set_led(False)
        assert [int(v) for v in pin.values] == [off, on, off]
    assert fw.Firmware({"device_id": "d"}, {}).make_led() is None


# -- a fatal configuration error never arms the watchdog ----------------------------------


def _armed():
    from tether.hal.watchdog import FakeWDT

    return FakeWDT.armed


@pytest.mark.parametrize(
    "settings, secrets, error",
    [
        ({}, {"secret_key": "k"}, "wifi_ssid missing"),
        ({"wifi": {"driver": "radio9"}}, {"wifi_ssid": "n", "secret_key": "k"}, "radio9"),
        ({}, {"wifi_ssid": "n"}, "secret_key missing"),
        ({"store": {"max_bytes": 100}}, {"wifi_ssid": "n", "secret_key": "k"}, "store"),
        ({"diagnostics": {"interval_s": 0}}, {"wifi_ssid": "n", "secret_key": "k"}, "interval"),
    ],
)
def test_settings_refused_before_the_watchdog_is_armed(tmp_path, settings, secrets, error):
    import asyncio

    base = {"device_id": "d", "watchdog_ms": 200, "wifi": {"driver": "fake"}}
    s = fw.load_settings(_write(tmp_path, dict(base, **settings), secrets))
    f = fw.Firmware(s, {})
    before = _armed()
    with pytest.raises(fw.SettingsError, match=error):
        asyncio.run(f.run())
    assert f.guard is None and _armed() == before  # a board would not reset into it again


def test_missing_credential_file_refused_before_the_watchdog_is_armed(tmp_path):
    import asyncio

    from tether.creds import CredentialError

    settings = {"device_id": "d", "watchdog_ms": 200, "credentials": {"ca": "nope.der"}}
    s = fw.load_settings(_write(tmp_path, settings, {"wifi_ssid": "n", "secret_key": "k"}))
    f = fw.Firmware(s, {})
    before = _armed()
    with pytest.raises(CredentialError):
        asyncio.run(f.run())
    assert f.guard is None and _armed() == before


# -- store and diagnostics from the settings alone ------------------------------------------


def _prepared(tmp_path, **extra):
    settings = dict({"device_id": "dev-1", "wifi": {"driver": "none"}}, **extra)
    f = fw.Firmware(fw.load_settings(_write(tmp_path, settings, {"secret_key": "k"})), {})
    f.prepare()
    return f


def test_the_store_is_on_by_default_next_to_the_settings(tmp_path):
    f = _prepared(tmp_path)
    assert f.client.store is f.store and f.store is not None
    st = f.store
    assert st.path == str(tmp_path / "store") and (tmp_path / "store").is_dir()
    assert st.seg_bytes == 2048 and st.max_segments == 8  # max_bytes 16384 by default
    st.close()


def test_the_store_follows_its_settings_or_is_off(tmp_path):
    f = _prepared(tmp_path, store={"dir": "q", "max_bytes": 4096, "segment_bytes": 1024})
    st = f.store
    assert st.path == str(tmp_path / "q") and st.max_segments == 4
    st.close()
    for off in (False, None):
        f = _prepared(tmp_path, store=off)
        assert f.store is None and f.client.store is None


def test_an_unusable_store_directory_is_a_warning_not_a_stop(tmp_path):
    (tmp_path / "store").write_text("a file where the directory should be")
    f = _prepared(tmp_path)
    assert f.store is None and f.client.store is None


def test_diagnostics_are_off_by_default(tmp_path):
    assert _prepared(tmp_path).client.session.on_diagnostics is None


def test_diagnostics_logged_and_published_on_the_configured_topic(tmp_path, capsys):
    import asyncio

    f = _prepared(tmp_path, diagnostics={"interval_s": 5, "topic": "diag/{device_id}"})
    assert f.client.session.diag_interval_ms == 5000
    sent = []

    async def publish(topic, payload, qos=1):  # the client's publish seam
        sent.append((topic, payload, qos))

    f.client.publish = publish
    asyncio.run(f.diagnostics(f.client, {"state": "ready", "queue_depth": 2}))
    assert len(sent) == 1 and sent[0][0] == "diag/dev-1" and sent[0][2] == 0
    d = json.loads(sent[0][1])
    assert d["state"] == "ready" and d["queue_depth"] == 2 and "uptime_s" in d
    assert "diagnostics {" in capsys.readouterr().out


def test_diagnostics_without_a_topic_are_only_logged(tmp_path):
    import asyncio

    f = _prepared(tmp_path, diagnostics=True)
    assert f.client.session.diag_interval_ms == 60000
    sent = []

    async def publish(topic, payload, qos=1):
        sent.append(topic)

    f.client.publish = publish
    asyncio.run(f.diagnostics(f.client, {"state": "ready"}))
    assert sent == []
