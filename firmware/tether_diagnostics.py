"""The firmware's diagnostics: settings "diagnostics" (off by default), docs/firmware.md.

Loaded by tether_firmware only when the settings turn diagnostics on, so a board without
them does not hold this code. Every interval_s the cloud client hands its diagnostics
(tether.cloud: session state, queue depth, MQTT counters, heap) to Firmware.diagnostics,
which logs them as one JSON line and, when a topic is set, publishes them with QoS 0.
"""

import json

from tether import log
from tether.compat import ticks_diff, ticks_ms
from tether_settings import SettingsError

_log = log.getLogger("firmware")


def setup(fw, cfg):
    """Check the "diagnostics" settings (true or an object) and register the callback on
    fw.client; SettingsError for a bad value."""
    if cfg is True:
        cfg = {}
    if not isinstance(cfg, dict):
        raise SettingsError("diagnostics must be an object, true or false")
    interval = cfg.get("interval_s", 60)
    if not isinstance(interval, (int, float)) or interval <= 0:
        raise SettingsError("diagnostics.interval_s must be a positive number")
    topic = cfg.get("topic")
    if topic:
        fw._diag_topic = topic.replace("{device_id}", fw.settings["device_id"])
    fw.client.set_diagnostics(int(interval * 1000), fw.diagnostics)


async def report(client, d, t0, topic):
    """One log line, plus a QoS 0 publish on `topic` when given (never the cloud's own
    topics: their payloads mean values). t0: the boot's ticks_ms, for uptime_s."""
    d["uptime_s"] = ticks_diff(ticks_ms(), t0) // 1000
    text = json.dumps(d)
    _log.info("diagnostics %s", text)
    if topic:
        await client.publish(topic, text, 0)
