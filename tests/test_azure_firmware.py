"""`"cloud": "azure"` in the real firmware on the MicroPython unix port (issue 12 item 5):
examples/azure_firmware (settings.json + azure_app.py, run by its demo.py, the Azure variant of
`make demo`) against the Azure emulator.

Boot 1: DPS registers (individual symmetric key), the assignment is cached in the board's
flash by rename, the hub connection carries the app's telemetry (through the firmware's
flash store, with the SDK's property bag), a desired patch is answered by a reported patch,
a direct method is answered by the app's async handler (and an unknown one with its 404).
Boot 2: the cached assignment goes straight to the hub: DPS sees no second registration;
with a 6 s SAS lifetime the token is renewed before `se` as a planned reconnect, no message
lost or repeated.
Boot 3: a connection string in the secrets instead of DPS.
"""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples" / "azure_firmware"))

import demo  # noqa: E402

pytestmark = pytest.mark.timeout(150)


def test_firmware_with_azure_settings_provisions_caches_and_serves(tmp_path):
    sim, azure = demo.start_emulator(tmp_path)
    try:
        key = azure.add_enrollment(demo.REG).key
        settings = demo.write_board(sim, azure, tmp_path / "board", key)
        s1 = demo.first_boot(sim, azure, settings)
        out1 = s1["output"]
        assert s1["registration"]["status"] == "assigned", out1[-3000:]
        cached = json.loads((tmp_path / "board" / "azure_assignment.json").read_text())
        assert cached == {
            "id_scope": azure.id_scope,
            "registration_id": demo.REG,
            "assigned_hub": azure.assigned_hub,
            "device_id": demo.REG,
        }
        assert not (tmp_path / "board" / "azure_assignment.json.tmp").exists()
        assert s1["method"] == (200, {"interval": 0.2})
        assert s1["unknown_method"] == (404, {"unknown": "reboot"})
        assert s1["reported"]["interval"] == 0.5 and s1["desired_version"] >= 2
        sent = s1["telemetry"]
        assert [json.loads(m["body"])["n"] for m in sent] == list(range(len(sent)))
        props = sent[0]["properties"]
        assert props["$.ct"] == "application/json" and props["$.ce"] == "utf-8", props
        assert props["seq"] == "0"
        assert (tmp_path / "board" / "store").exists()  # telemetry went through the flash queue
        dev = sim.device(demo.REG, "azure")
        assert dev.auth == "sas" and dev.connects == 1, out1[-3000:]

        # Boot 2 with a 6 s SAS: renewed before `se` (where the emulator would close the
        # session) as a planned reconnect, telemetry flowing throughout, nothing lost.
        doc = json.loads(settings.read_text())
        doc["azure"]["sastoken_ttl"] = 6
        settings.write_text(json.dumps(doc))
        s2 = demo.second_boot(sim, azure, settings, linger_s=7)
        out2 = s2["output"]
        assert s2["registration"] == s1["registration"]  # no DPS on boot 2
        renewals = out2.count("renewing credentials")
        assert renewals >= 1, out2[-3000:]
        assert sim.device(demo.REG, "azure").connects == 2 + renewals
        assert "WARNING:session" not in out2, out2[-3000:]  # no failed round
        # The app counts from 0 again on the new boot; every message arrived once, in order.
        ns = [json.loads(m["body"])["n"] for m in s2["telemetry"]]
        assert ns == list(range(len(ns))) and len(ns) >= 6, ns

        dev = azure.add_device("cs-dev")
        cs = "HostName=%s;DeviceId=cs-dev;SharedAccessKey=%s" % (azure.hub_host, dev.key)
        doc = json.loads(settings.read_text())
        doc["device_id"] = "cs-dev"
        del doc["azure"]["id_scope"]
        settings.write_text(json.dumps(doc))
        (settings.parent / "secrets.json").write_text(json.dumps({"connection_string": cs}))
        board = demo.BoardProcess(settings)
        try:
            board.wait_line("tether: connected", 40)
            demo.wait_for(lambda: azure.telemetry("cs-dev"), 40, board.output())
        finally:
            board.stop()
        assert sim.device("cs-dev", "azure").auth == "sas"
    finally:
        sim.stop()
