"""Board names in one place: `make BOARD=portenta ...` and every tool resolve them here.

    python -m tools.boards resolve nano        -> NANO_RP2040_CONNECT
    python -m tools.boards get esp32 mpy_arch  -> xtensawin
    python -m tools.boards list

Names are case-insensitive; short forms: esp32, portenta, nano, nano_rp2040, unix (the unix
port as a board: a frozen image that runs without hardware).
"""

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BOARDS_DIR = ROOT / "boards"

ALIASES = {
    "esp32": "ESP32",
    "portenta": "PORTENTA_H7",
    "portenta_h7": "PORTENTA_H7",
    "nano": "NANO_RP2040_CONNECT",
    "nano_rp2040": "NANO_RP2040_CONNECT",
    "nano_rp2040_connect": "NANO_RP2040_CONNECT",
}


def names():
    return sorted(p.name for p in BOARDS_DIR.iterdir() if (p / "board.json").exists())


def resolve(name):
    """The board folder name for `name`; ValueError listing the choices otherwise."""
    key = name.strip().lower().replace("-", "_")
    board = ALIASES.get(key, key.upper())
    if board not in names():
        choices = ", ".join(names() + sorted(ALIASES))
        raise ValueError("unknown board %r (one of: %s)" % (name, choices))
    return board


def load(name):
    board = resolve(name)
    info = json.loads((BOARDS_DIR / board / "board.json").read_text())
    info["dir"] = str(BOARDS_DIR / board)
    return info


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools.boards", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list")
    r = sub.add_parser("resolve")
    r.add_argument("board")
    g = sub.add_parser("get")
    g.add_argument("board")
    g.add_argument("key")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "list":
            for n in names():
                print(n)
        elif args.cmd == "resolve":
            print(resolve(args.board))
        else:
            value = load(args.board)[args.key]
            print(value if not isinstance(value, (list, dict)) else json.dumps(value))
    except (ValueError, KeyError) as exc:
        print("error: %s" % (exc.args[0] if exc.args else exc), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
