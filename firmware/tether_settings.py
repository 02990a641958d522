"""Tether firmware settings: settings.json, its secrets, the board's defaults, safe mode.

Kept apart from tether_firmware (the bring-up) so each stays small; tether_firmware
re-exports these names. Formats: docs/firmware.md.
"""

import json
import os
import sys

from tether import log

SAFE_FILES = ("SAFE", "safe_mode")
SECRET_KEYS = ("wifi_password", "secret_key")
_PY_SECRETS = {
    "WIFI_SSID": "wifi_ssid",
    "WIFI_PASS": "wifi_password",
    "DEVICE_ID": "device_id",
    "SECRET_KEY": "secret_key",
}
# The clouds a settings file may name; the profiles an image holds are its own business.
CLOUDS = ("arduino", "azure", "akenza", "sap", "astarte")

_log = log.getLogger("firmware")


class SettingsError(ValueError):
    pass


def _getenv(name):
    getenv = getattr(os, "getenv", None)
    return getenv(name) if getenv else None


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _dirname(path):
    i = path.rfind("/")
    return path[:i] if i > 0 else ("/" if i == 0 else "")


def _join(base, path):
    if not base or path.startswith("/"):
        return path
    return base.rstrip("/") + "/" + path


def settings_path(argv):
    if len(argv) > 1:
        return argv[1]
    return _getenv("TETHER_SETTINGS") or "settings.json"


def _read_json(path, what):
    try:
        with open(path) as f:
            data = json.load(f)
    except OSError:
        raise SettingsError("%s %s not found" % (what, path))
    except ValueError:
        raise SettingsError("%s %s is not valid JSON" % (what, path))
    if not isinstance(data, dict):
        raise SettingsError("%s %s must hold a JSON object" % (what, path))
    return data


def _read_secrets_py(path):
    # The arduino-iot-cloud-py secrets.py, read as data: executed in an empty namespace
    # (never imported: CPython has a stdlib module of that name).
    ns = {}
    try:
        with open(path) as f:
            exec(f.read(), ns)
    except OSError:
        raise SettingsError("secrets file %s not found" % path)
    except Exception as exc:
        raise SettingsError("secrets file %s cannot be read (%s)" % (path, type(exc).__name__))
    out = {}
    for name, key in _PY_SECRETS.items():
        if name in ns:
            out[key] = ns[name]
    return out


def load_secrets(settings):
    base = settings.get("_dir", "")
    name = settings.get("secrets")
    if name:
        path = _join(base, name)
        if path.endswith(".py"):
            return _read_secrets_py(path)
        return _read_json(path, "secrets file")
    for candidate, reader in (("secrets.json", None), ("secrets.py", _read_secrets_py)):
        path = _join(base, candidate)
        if _exists(path):
            return reader(path) if reader else _read_json(path, "secrets file")
    return {}


def load_settings(path):
    """settings.json merged with its secrets; `_dir` is the folder relative paths use."""
    settings = _read_json(path, "settings file")
    settings["_dir"] = _dirname(path)
    secrets = load_secrets(settings)
    for key, value in secrets.items():
        if not isinstance(value, str):
            raise SettingsError("secret %s must be a string" % key)  # never the value
    settings["_secrets"] = secrets
    if not settings.get("device_id") and secrets.get("device_id"):
        settings["device_id"] = secrets["device_id"]
    cloud = settings.setdefault("cloud", "arduino")
    if cloud not in CLOUDS:
        raise SettingsError("cloud %r unknown (one of: %s)" % (cloud, ", ".join(CLOUDS)))
    if not settings.get("device_id"):
        raise SettingsError("device_id missing (settings.json or the secrets)")
    return settings


def load_board():
    """The board's defaults (boards/<B>/board.json, deployed as tether_board.json)."""
    for path in ("tether_board.json", "/tether_board.json"):
        if _exists(path):
            try:
                with open(path) as f:
                    board = json.load(f)
            except ValueError:
                _log.warning("%s is not valid JSON: ignored", path)
                return {}
            # sys.platform is not the port's name everywhere (stm32 says "pyboard")
            plat = board.get("sys_platform", board.get("port"))
            if plat != sys.platform:
                # e.g. an ESP32 bundle on the simulated board: its pins and radio are not here
                _log.info("%s is for %s, this is %s: ignored", path, plat, sys.platform)
                return {}
            return board
    return {}


def safe_mode_reason(settings, board, root=""):
    for name in SAFE_FILES:
        if _exists(_join(root, name)):
            return "file %s present" % name
    pin = settings.get("safe_mode_pin", board.get("safe_mode_pin"))
    if pin is not None:
        try:
            from machine import Pin

            if Pin(pin, Pin.IN, Pin.PULL_UP).value() == 0:
                return "pin %s held low" % pin
        except (ImportError, AttributeError, ValueError, TypeError) as exc:
            _log.warning("safe-mode pin %r unusable: %r", pin, exc)
    return None
