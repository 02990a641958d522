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
    with pytest.raises(fw.SettingsError, match="secret_key missing"):
        fw.PROFILES["arduino"](s, {})


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
