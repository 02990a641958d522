"""Drive Tether's tether.astarte.DeviceMqtt from a test, one JSON line at a time.

The same protocol as tests/ref/astarte_sdk_driver.py (see there), so that
tests/test_astarte_sdk_fidelity.astarte_flow runs Tether through the very same flow as the
official SDK. Runs on CPython (PYTHONPATH=lib) and on the MicroPython unix port
(MICROPYPATH=.frozen:lib). Arguments: device_id realm pairing_base_url persistency_dir
interfaces_dir ca_file (the test CA, PEM: Tether takes it as `ca=`, no environment).
Extra ops for Tether's own tests: open {secret} (make the device, do not connect), stats
(the client's counters), flush {timeout_ms}; open/connect take persistent_session.
"""

import asyncio
import json
import sys

from tether import log
from tether.astarte import DeviceMqtt, aregister_device_with_jwt_token
from tether.compat import MICROPYTHON
from tether.encoding import b64decode, b64encode


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    if hasattr(sys.stdout, "flush"):
        sys.stdout.flush()


def to_json(v):
    if isinstance(v, (bytes, bytearray)):
        s = b64encode(bytes(v))
        return {"$bytes": s.decode() if isinstance(s, bytes) else s}
    if isinstance(v, (list, tuple)):
        return [to_json(x) for x in v]
    if isinstance(v, dict):
        return {k: to_json(x) for k, x in v.items()}
    if hasattr(v, "ms"):  # tether.bson.UTCDateTime
        return {"$date": v.ms}
    if hasattr(v, "timestamp") and hasattr(v, "tzinfo"):  # datetime
        return {"$date": int(round(v.timestamp() * 1000))}
    return v


def date(ms):
    if MICROPYTHON:
        from tether.bson import UTCDateTime

        return UTCDateTime(ms)
    import datetime

    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)


def from_json(v):
    if isinstance(v, dict):
        if list(v) == ["$date"]:
            return date(v["$date"])
        if list(v) == ["$bytes"]:
            return b64decode(v["$bytes"])
        return {k: from_json(x) for k, x in v.items()}
    if isinstance(v, list):
        return [from_json(x) for x in v]
    return v


class Lines:
    """stdin lines inside the loop: a stream on MicroPython, a thread on CPython."""

    def __init__(self):
        if MICROPYTHON:
            self._r = asyncio.StreamReader(sys.stdin)
            return
        import threading

        self._q = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def pump():
            for line in sys.stdin:
                loop.call_soon_threadsafe(self._q.put_nowait, line)
            loop.call_soon_threadsafe(self._q.put_nowait, "")

        threading.Thread(target=pump, daemon=True).start()

    async def readline(self):
        if MICROPYTHON:
            line = await self._r.readline()
            return line.decode() if isinstance(line, bytes) else line
        return await self._q.get()


async def main():
    device_id, realm, url, persistency, interfaces, ca = sys.argv[1:7]
    import os

    debug = getattr(os, "getenv", lambda k: None)("TETHER_DEBUG")
    log.basicConfig(level=log.DEBUG if debug else log.INFO, stream=sys.stderr)
    state = {"device": None}

    def on_connected(_device):
        emit({"ev": "connected"})

    def on_data(_device, interface, path, payload):
        emit({"ev": "data", "interface": interface, "path": path, "value": to_json(payload)})

    def on_disconnected(_device, rc):
        emit({"ev": "disconnected", "rc": rc})

    def device():
        if state["device"] is None:
            raise RuntimeError("connect first")
        return state["device"]

    def ts(cmd):
        ms = cmd.get("timestamp_ms")
        return None if ms is None else date(ms)

    async def run(cmd):
        op = cmd["op"]
        if op == "register":
            return await aregister_device_with_jwt_token(device_id, realm, cmd["jwt"], url, ca=ca)
        if op in ("open", "connect"):
            if state["device"] is None:
                persistent = cmd.get("persistent_session", False)
                dev = DeviceMqtt(
                    device_id, realm, cmd["secret"], url, persistency, ca=ca,
                    persistent_session=persistent,
                )  # fmt: skip
                dev.add_interfaces_from_dir(interfaces)
                dev.set_events_callbacks(on_connected, on_data, on_disconnected)
                state["device"] = dev
            return device().connect() if op == "connect" else None
        if op == "send":
            value = from_json(cmd["value"])
            return device().send(cmd["interface"], cmd["path"], value, ts(cmd))
        if op == "send_aggregate":
            value = from_json(cmd["value"])
            return device().send_aggregate(cmd["interface"], cmd["path"], value, ts(cmd))
        if op == "unset":
            return device().unset_property(cmd["interface"], cmd["path"])
        if op == "props":
            return [list(r) for r in device().properties.load_all_props()]
        if op == "is_connected":
            return device().is_connected()
        if op == "disconnect":
            return device().disconnect()
        if op == "stats":
            return device().stats()
        if op == "flush":
            return await device().flush(cmd.get("timeout_ms", 10000))
        raise ValueError("unknown op %r" % op)

    lines = Lines()
    while True:
        line = await lines.readline()
        if not line:
            break
        if not line.strip():
            continue
        cmd = json.loads(line)
        if cmd["op"] == "exit":
            emit({"ev": "reply", "id": cmd.get("id"), "ok": True, "result": None})
            break
        try:
            result = await run(cmd)
            emit({"ev": "reply", "id": cmd.get("id"), "ok": True, "result": to_json(result)})
        except Exception as exc:
            err = "%s: %s" % (type(exc).__name__, exc)
            emit({"ev": "reply", "id": cmd.get("id"), "ok": False, "error": err})


asyncio.run(main())
