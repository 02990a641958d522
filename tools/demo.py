"""`make demo`: the local cloud emulator + the real firmware on the MicroPython unix port.

    python -m tools.demo [--seconds N] [--auth password|certificate] [--workdir var/demo]

Starts the emulator (tools/cloudsim) with its dashboard, registers the demo device, writes a
simulated board's filesystem (settings.json, secrets.json, DER credentials) and runs
firmware/main.py with the demo app (examples/demo/demo_app.py). Prints the dashboard URL and
a live log of both sides until Ctrl-C, or for N seconds (DEMO_SECONDS). Exits non-zero if
the board never connected or never pushed a value, so the demo doubles as a smoke test.
"""

import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path

from tools.cloudsim import CloudSim
from tools.cloudsim.__main__ import REGISTRY, _load_store, format_event
from tools.cloudsim.board import ROOT, BoardProcess, write_board_dir

DEVICE_ID = "d3e0d3e0-0000-4000-8000-00000000de30"
_PREFERRED = {"password_port": 8884, "certificate_port": 8885, "http_port": 8080}

_print_lock = threading.Lock()


def say(side, text):
    with _print_lock:
        print("%-6s| %s" % (side, text), flush=True)


def start_sim(workdir, free_ports=False):
    """On the cloud's own port numbers when they are free, else on any free ports."""
    store = _load_store(workdir)
    if not free_ports:
        try:
            return CloudSim(workdir, store=store, **_PREFERRED).start()
        except OSError:
            pass
    return CloudSim(workdir, store=store).start()


def follow_events(sim, stop):
    last = sim.last_seq()
    while not stop.wait(0.2):
        with sim.store.lock:
            fresh = [e for e in sim.store.events if e["seq"] > last]
        for e in fresh:
            last = e["seq"]
            if e["kind"] not in ("sent", "subscribed"):  # keep the log readable
                say("cloud", format_event(e))


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m tools.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=float(os.environ.get("DEMO_SECONDS") or 0),
        help="stop after this long (default: DEMO_SECONDS, else Ctrl-C)",
    )
    parser.add_argument("--auth", choices=("password", "certificate"), default="password")
    parser.add_argument("--workdir", default=str(ROOT / "var" / "demo"))
    parser.add_argument(
        "--free-ports",
        action="store_true",
        help="any free ports instead of 8884/8885/8080 (tests)",
    )
    args = parser.parse_args(argv)

    # Ctrl-C and SIGTERM both end the demo cleanly (even when started with SIGINT ignored,
    # as a shell's background job is).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    workdir = Path(args.workdir)
    sim = start_sim(workdir, args.free_ports)  # creates the test PKI (workdir/pki) on first run
    stop = threading.Event()
    board = None
    ok = False
    try:
        dev = sim.add_device(
            DEVICE_ID, secret=_secret(sim), certificate=args.auth == "certificate"
        )
        if "led" not in sim.values(dev.thing_id):
            sim.set_values(dev.thing_id, {"led": False})  # the thing's LED variable
        settings = write_board_dir(sim, DEVICE_ID, workdir / "board", auth=args.auth)
        print()
        print("  Tether demo: firmware on the MicroPython unix port <-> local Arduino cloud")
        print("  Dashboard:  %s   (flip 'led', watch 'temperature')" % sim.dashboard_url)
        print(
            "  MQTT/TLS:   localhost:%d (password), localhost:%d (certificate), test CA %s"
            % (sim.ports["password"], sim.ports["certificate"], sim.ca.cert_pem_path)
        )
        print("  Board dir:  %s" % settings.parent)
        print("  Stop with Ctrl-C%s." % (" (or wait %g s)" % args.seconds if args.seconds else ""))
        print()
        threading.Thread(target=follow_events, args=(sim, stop), daemon=True).start()
        board = BoardProcess(
            settings, app_paths=[ROOT / "examples" / "demo"], echo=lambda line: say("board", line)
        )
        deadline = time.monotonic() + args.seconds if args.seconds else None
        while deadline is None or time.monotonic() < deadline:
            if board.proc.poll() is not None:
                say("demo", "the board exited with status %s" % board.proc.returncode)
                break
            time.sleep(0.2)
    except KeyboardInterrupt:
        print()
    finally:
        stop.set()
        if board is not None:
            board.stop()
        try:
            dev = sim.device(DEVICE_ID)
            ok = dev.connects > 0 and "temperature" in sim.values(dev.thing_id)
        finally:
            sim.stop()
            sim.store.save(workdir / REGISTRY)
    say("demo", "done: board %s" % ("connected and pushed values" if ok else "NEVER CONNECTED"))
    return 0 if ok else 1


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _secret(sim):
    old = sim.store.devices.get(DEVICE_ID)
    if old is not None and old.secret:
        return old.secret
    import secrets

    return secrets.token_urlsafe(16)


if __name__ == "__main__":
    sys.exit(main())
