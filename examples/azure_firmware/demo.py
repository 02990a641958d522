"""The Azure variant of `make demo`: the real firmware (firmware/main.py) on the MicroPython
unix port, `"cloud": "azure"` in its settings.json, against the local Azure emulator.

    .venv/bin/python examples/azure_firmware/demo.py [--seconds 30] [--dir var/azure-demo]

What it shows: DPS registration with an individual symmetric key (the assignment cached in
the board's flash), the hub connection, telemetry from azure_app.py through the flash store, a
desired-property patch answered by a reported patch, and a direct method, all driven from
Python here the way the Azure portal would. Then the board reboots: the cached assignment
takes it straight to the hub, without DPS.

The board directory is what a real board's filesystem holds: this folder's settings.json
and azure_app.py with the `azure` fields pointed at the emulator, secrets.json (the enrollment
key) and ca.der (the emulator's CA: on a real board `credentials.ca` stays unset and the
embedded DigiCert / Microsoft roots verify the hub).
"""

import argparse
import json
import random
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.cloudsim import CloudSim  # noqa: E402
from tools.cloudsim.board import BoardProcess  # noqa: E402
from tools.cloudsim.plugins.azure import AzurePlugin  # noqa: E402

REG = "tether-azure-1"


def start_emulator(workdir, port=8883):
    """The emulator with the Azure plug-in on a loopback pair of its own (parallel runs)."""
    a, b = random.randint(16, 250), random.randint(1, 250)
    azure = AzurePlugin(hub_host="127.%d.%d.2" % (a, b), dps_host="127.%d.%d.3" % (a, b))
    sim = CloudSim(Path(workdir) / "sim", clouds=[azure], dashboard=False).start()
    return sim, azure


def write_board(sim, azure, board, key, registration_id=REG):
    """settings.json, secrets.json, azure_app.py and ca.der of a board pointed at the emulator."""
    board = Path(board)
    board.mkdir(parents=True, exist_ok=True)
    settings = json.loads((HERE / "settings.json").read_text())
    settings["device_id"] = registration_id
    settings["azure"].update(
        id_scope=azure.id_scope,
        registration_id=registration_id,
        provisioning_host=azure.dps_host,
        port=azure.port,
    )
    settings["wifi"] = {"driver": "none"}  # the unix port is already online
    settings["watchdog_ms"] = 0
    settings["credentials"] = {"ca": "ca.der"}  # the emulator's CA, not Azure's roots
    shutil.copy(sim.ca.cert_der_path, board / "ca.der")
    shutil.copy(HERE / "azure_app.py", board / "azure_app.py")
    (board / "settings.json").write_text(json.dumps(settings, indent=1))
    (board / "secrets.json").write_text(json.dumps({"symmetric_key": key}))
    return board / "settings.json"


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(what)


def first_boot(sim, azure, settings_path, echo=None, timeout=40):
    """Boot 1: DPS, hub, telemetry, a desired patch reported back, a direct method.
    Returns a summary dict (what the hub saw)."""
    board = BoardProcess(settings_path, app_paths=[settings_path.parent], echo=echo)
    try:
        board.wait_line("tether: connected", timeout)
        wait_for(lambda: len(azure.telemetry(REG)) >= 2, timeout, "telemetry:\n" + board.output())
        wait_for(
            lambda: "$iothub/methods/POST/#" in sim.device(REG, "azure").subscriptions,
            timeout,
            "the method subscription",
        )
        version = azure.set_desired(REG, {"interval": 0.5})
        azure.wait_twin(lambda d: d["reported"].get("interval") == 0.5, REG, timeout)
        method = azure.invoke_method(REG, "set_interval", 0.2, timeout_s=10)
        unknown = azure.invoke_method(REG, "reboot", None, timeout_s=10)
        return {
            "registration": azure.registration(REG),
            "desired_version": version,
            "reported": azure.twin(REG)["reported"],
            "method": method,
            "unknown_method": unknown,
            "telemetry": azure.telemetry(REG),
            "output": board.output(),
        }
    finally:
        board.stop()


def second_boot(sim, azure, settings_path, echo=None, timeout=40, linger_s=0):
    """Boot 2: the cached assignment, straight to the hub; returns the new telemetry."""
    before = len(azure.telemetry(REG))
    board = BoardProcess(settings_path, app_paths=[settings_path.parent], echo=echo)
    try:
        board.wait_line("tether: connected", timeout)
        azure.wait_telemetry(REG, before + 2, timeout)
        time.sleep(linger_s)
        return {
            "registration": azure.registration(REG),
            "telemetry": azure.telemetry(REG)[before:],
            "output": board.output(),
        }
    finally:
        board.stop()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", default=str(ROOT / "var" / "azure-demo"))
    ap.add_argument("--seconds", type=float, default=10, help="how long boot 2 runs")
    args = ap.parse_args(argv)
    work = Path(args.dir)
    shutil.rmtree(work, ignore_errors=True)
    sim, azure = start_emulator(work)
    try:
        key = azure.add_enrollment(REG).key
        settings = write_board(sim, azure, work / "board", key)
        print("board directory: %s" % settings.parent)
        s1 = first_boot(sim, azure, settings, echo=lambda line: print("  board1 |", line))
        print("DPS registration: %s" % json.dumps(s1["registration"], default=str))
        print("direct method set_interval -> %r" % (s1["method"],))
        print("reported properties: %s" % json.dumps(s1["reported"]))
        s2 = second_boot(
            sim,
            azure,
            settings,
            echo=lambda line: print("  board2 |", line),
            linger_s=args.seconds,
        )
        print("telemetry at the hub: %d messages" % len(azure.telemetry(REG)))
        print("boot 2 registered again: %s" % (s2["registration"] != s1["registration"]))
    finally:
        sim.stop()


if __name__ == "__main__":
    main()
