"""Drive the official astarte-device-sdk from a test, one JSON line at a time.

Runs in the SDK's own venv (tests/refvenv.py, "astarte"). Arguments: device_id realm
pairing_base_url persistency_dir interfaces_dir. The test writes commands on stdin, one JSON
object a line ({"id": n, "op": ..., ...}); this prints, one JSON object a line on stdout:

    {"ev": "reply", "id": n, "ok": true, "result": ...}     or "ok": false, "error": "Name: msg"
    {"ev": "connected"}                                      the SDK's on_connected
    {"ev": "data", "interface": ..., "path": ..., "value": ...}   on_data_received
    {"ev": "disconnected", "rc": n}                          on_disconnected

Ops: register {jwt}; connect {secret}; send / send_aggregate {interface, path, value,
timestamp_ms}; unset {interface, path}; props (the SDK's property database); is_connected;
disconnect; exit. Values in JSON: {"$date": ms} is a datetime, {"$bytes": base64} bytes.
TLS trust comes from SSL_CERT_FILE / REQUESTS_CA_BUNDLE (the test CA): the SDK passes no
CA of its own to requests or paho. The same protocol is what a Tether driver implements.
"""

import base64
import datetime
import json
import logging
import sys
import threading
from pathlib import Path

from astarte.device import DeviceMqtt, register_device_with_jwt_token

_out = threading.Lock()
UTC = datetime.timezone.utc


def emit(obj):
    line = json.dumps(obj, default=str)
    with _out:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def to_json(v):
    if isinstance(v, datetime.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=UTC)
        return {"$date": int(v.timestamp() * 1000)}
    if isinstance(v, (bytes, bytearray)):
        return {"$bytes": base64.b64encode(bytes(v)).decode()}
    if isinstance(v, list):
        return [to_json(x) for x in v]
    if isinstance(v, dict):
        return {k: to_json(x) for k, x in v.items()}
    return v


def from_json(v):
    if isinstance(v, dict):
        if set(v) == {"$date"}:
            return datetime.datetime.fromtimestamp(v["$date"] / 1000, UTC)
        if set(v) == {"$bytes"}:
            return base64.b64decode(v["$bytes"])
        return {k: from_json(x) for k, x in v.items()}
    if isinstance(v, list):
        return [from_json(x) for x in v]
    return v


def main():
    device_id, realm, pairing_url, persistency, interfaces = sys.argv[1:6]
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    state = {"device": None}

    def on_connected(_device):
        emit({"ev": "connected"})

    def on_data(_device, interface, path, payload):
        emit({"ev": "data", "interface": interface, "path": path, "value": to_json(payload)})

    def on_disconnected(_device, rc):
        emit({"ev": "disconnected", "rc": int(rc)})

    def device():
        if state["device"] is None:
            raise RuntimeError("connect first")
        return state["device"]

    def ts(cmd):
        ms = cmd.get("timestamp_ms")
        return None if ms is None else datetime.datetime.fromtimestamp(ms / 1000, UTC)

    def run(cmd):
        op = cmd["op"]
        if op == "register":
            return register_device_with_jwt_token(device_id, realm, cmd["jwt"], pairing_url)
        if op == "connect":
            if state["device"] is None:
                dev = DeviceMqtt(device_id, realm, cmd["secret"], pairing_url, persistency)
                dev.add_interfaces_from_dir(Path(interfaces))
                dev.set_events_callbacks(on_connected, on_data, on_disconnected)
                state["device"] = dev
            return device().connect()
        if op == "send":
            return device().send(cmd["interface"], cmd["path"], from_json(cmd["value"]), ts(cmd))
        if op == "send_aggregate":
            return device().send_aggregate(
                cmd["interface"], cmd["path"], from_json(cmd["value"]), ts(cmd)
            )
        if op == "unset":
            return device().unset_property(cmd["interface"], cmd["path"])
        if op == "props":
            # The SDK's own property cache (name-mangled private attribute: test only).
            db = device()._DeviceMqtt__prop_database
            return [[i, major, p, to_json(v)] for i, major, p, v in db.load_all_props()]
        if op == "is_connected":
            return device().is_connected()
        if op == "disconnect":
            return device().disconnect()
        raise ValueError("unknown op %r" % op)

    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        if cmd["op"] == "exit":
            emit({"ev": "reply", "id": cmd.get("id"), "ok": True, "result": None})
            break
        try:
            result = run(cmd)
            emit({"ev": "reply", "id": cmd.get("id"), "ok": True, "result": to_json(result)})
        except Exception as exc:
            err = "%s: %s" % (type(exc).__name__, exc)
            emit({"ev": "reply", "id": cmd.get("id"), "ok": False, "error": err})


if __name__ == "__main__":
    main()
