"""Command line: `python -m tools.cloudsim [--workdir DIR] serve|provision ...`.

serve       run the emulator until Ctrl-C, printing a live log
provision   register a device (secret and/or certificate) in the workdir's registry; a
            running emulator picks it up within a second
"""

import argparse
import json
import logging
import os
import secrets
import signal
import sys
import threading
import time
import uuid
from pathlib import Path

from . import pki
from .plugins.arduino.store import Store
from .sim import DEFAULT_PORTS, CloudSim

REGISTRY = "registry.json"


def _load_store(workdir):
    store = Store()
    path = Path(workdir) / REGISTRY
    if path.exists():
        store.load(path)
    return store


def format_event(e):
    stamp = time.strftime("%H:%M:%S", time.localtime(e["t"]))
    who = (e["device"] or "cloud")[:13]
    return "%s  %-8s %-13s %-12s %s" % (stamp, e.get("cloud") or "", who, e["kind"], e["text"])


def cmd_provision(args):
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    store = _load_store(workdir)
    device_id = args.device or str(uuid.uuid4())
    old = store.devices.get(device_id)
    secret = args.secret
    if secret is None and not args.no_secret:
        secret = old.secret if old and old.secret else secrets.token_urlsafe(16)
    fingerprint = None
    files = {}
    ca = pki.TestCA(workdir / "pki")  # created on first use
    if args.cert:
        files = ca.device_files(device_id)
        fingerprint = pki.fingerprint(files["cert_der"].read_bytes())
    thing = args.thing
    if args.not_linked:
        thing = ""
    dev = store.add_device(device_id, secret, thing, fingerprint)
    store.save(workdir / REGISTRY)
    out = {
        "device_id": dev.id,
        "thing_id": dev.thing_id,
        "secret": dev.secret,
        "ca_der": str(ca.cert_der_path),
        "ca_pem": str(ca.cert_pem_path),
    }
    out.update({k: str(v) for k, v in files.items()})
    json.dump(out, sys.stdout, indent=1)
    print()
    return 0


def _watch_registry(sim, path, stop):
    """Pick up devices added by `provision` while the emulator runs."""
    seen = path.stat().st_mtime if path.exists() else 0
    while not stop.wait(1.0):
        if path.exists() and path.stat().st_mtime != seen:
            seen = path.stat().st_mtime
            try:
                fresh = Store()
                fresh.load(path)
            except (ValueError, OSError):
                continue
            for d in fresh.devices.values():
                sim.store.add_device(d.id, d.secret, d.thing_id, d.cert_fingerprint)


def _print_events(sim, stop, out):
    last = 0
    while not stop.wait(0.2):
        with sim.store.lock:
            fresh = [e for e in sim.store.events if e["seq"] > last]
        for e in fresh:
            last = e["seq"]
            out.write(format_event(e) + "\n")
        out.flush()


def cmd_serve(args):
    workdir = Path(args.workdir)
    store = _load_store(workdir)
    sim = CloudSim(
        workdir,
        host=args.host,
        password_port=args.password_port,
        certificate_port=args.certificate_port,
        http_port=args.http_port,
        plain_port=args.plain_port,
        store=store,
        server_names=args.server_name or (),
        clouds=["arduino"] + [c for c in args.cloud or () if c != "arduino"],
    )
    for spec in args.device or ():
        device_id, _, secret = spec.partition(":")
        sim.add_device(device_id, secret=secret or None)
    sim.start()
    info = {
        "ports": sim.ports,
        "dashboard": sim.dashboard_url,
        "ca_pem": str(sim.ca.cert_pem_path),
        "ca_der": str(sim.ca.cert_der_path),
        "pid": os.getpid(),
    }
    print(
        "cloudsim: MQTT password port %d, certificate port %d (TLS, CA %s)"
        % (sim.ports["password"], sim.ports["certificate"], sim.ca.cert_pem_path)
    )
    for name, port in sorted(sim.ports.items()):
        if name not in ("password", "certificate", "http"):
            print("cloudsim: %s port %d" % (name, port))
    print("cloudsim: dashboard %s" % sim.dashboard_url, flush=True)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            "cloudsim: WARNING listening on %s: anyone on that network can reach the "
            "dashboard (no login) and the broker" % args.host,
            flush=True,
        )
    if args.info_file:
        tmp = args.info_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump(info, f)
        os.replace(tmp, args.info_file)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    workers = [
        threading.Thread(target=_watch_registry, args=(sim, workdir / REGISTRY, stop), daemon=True)
    ]
    if not args.quiet:
        workers.append(
            threading.Thread(target=_print_events, args=(sim, stop, sys.stdout), daemon=True)
        )
    for w in workers:
        w.start()
    try:
        stop.wait(args.seconds if args.seconds else None)
    except KeyboardInterrupt:
        pass
    stop.set()
    sim.stop()
    store.save(workdir / REGISTRY)
    print("cloudsim: stopped", flush=True)
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m tools.cloudsim",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--workdir",
        default="var/cloudsim",
        help="registry, values and test PKI (default: var/cloudsim)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="amqtt debug logging")
    sub = parser.add_subparsers(dest="cmd")

    s = sub.add_parser("serve", help="run the emulator (default)")
    s.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (0.0.0.0 for a real board on the LAN)",
    )
    s.add_argument(
        "--server-name",
        action="append",
        metavar="NAME_OR_IP",
        help="extra name in the server certificate, e.g. this host's LAN IP",
    )
    s.add_argument("--password-port", type=int, default=DEFAULT_PORTS["password"])
    s.add_argument("--certificate-port", type=int, default=DEFAULT_PORTS["certificate"])
    s.add_argument("--http-port", type=int, default=DEFAULT_PORTS["http"])
    s.add_argument(
        "--plain-port",
        type=int,
        default=None,
        help="also listen without TLS (password auth; debugging only)",
    )
    s.add_argument(
        "--device",
        action="append",
        metavar="ID:SECRET",
        help="register a password device (repeatable)",
    )
    s.add_argument(
        "--cloud",
        action="append",
        metavar="NAME",
        help="also emulate this cloud (a tools/cloudsim/plugins module; repeatable)",
    )
    s.add_argument("--info-file", help="write ports and paths as JSON here once started")
    s.add_argument("--seconds", type=float, default=0, help="stop after this long")
    s.add_argument("-q", "--quiet", action="store_true", help="no live event log")

    p = sub.add_parser("provision", help="register a device, issue its certificate")
    p.add_argument("--device", help="device id (default: a new UUID)")
    p.add_argument("--secret", help="password (default: random, or the existing one)")
    p.add_argument("--no-secret", action="store_true", help="certificate auth only")
    p.add_argument("--cert", action="store_true", help="issue a client certificate")
    p.add_argument("--thing", help="thing id (default: a new UUID, or the existing one)")
    p.add_argument("--not-linked", action="store_true", help="register without a thing")

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.CRITICAL)
    if args.cmd == "provision":
        return cmd_provision(args)
    if args.cmd is None:
        args = parser.parse_args(list(argv or sys.argv[1:]) + ["serve"])
    return cmd_serve(args)


if __name__ == "__main__":
    sys.exit(main())
