"""Precompile Astarte interface JSON on the host into the compact form a board reads
without the interface parser (tether.astarte.iface.from_compact; docs/astarte.md).

    .venv/bin/python -m tools.astarte_ifc interfaces/ -o board/interfaces/
    .venv/bin/python -m tools.astarte_ifc org.x.Sensors.json -o out/

Each interface is checked as strictly as on the device (tether.astarte.interfaces: an error
names the file and the field) and written as `<interface_name>.ifc`, one JSON list.
DeviceMqtt.add_interfaces_from_dir reads *.ifc and *.json alike.
"""

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "lib"))


def compile_file(path):
    """The compact form (a list) of one interface JSON file."""
    from tether.astarte.iface import compact
    from tether.astarte.interfaces import load

    return compact(load(str(path)))


def compile_paths(paths, out_dir):
    """Write <name>.ifc for each JSON file (or every *.json of each folder); returns paths."""
    files = []
    for p in map(Path, paths):
        files += sorted(p.glob("*.json")) if p.is_dir() else [p]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for f in files:
        c = compile_file(f)
        dst = out_dir / (c[0] + ".ifc")
        dst.write_text(json.dumps(c, separators=(",", ":")) + "\n")
        written.append(dst)
    return written


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="+", help="interface JSON files or folders of them")
    ap.add_argument("-o", "--out", required=True, help="folder for the .ifc files")
    args = ap.parse_args(argv)
    from tether.astarte.errors import AstarteError

    try:
        for dst in compile_paths(args.paths, args.out):
            print(dst)
    except AstarteError as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
