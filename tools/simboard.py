"""A simulated board: the MicroPython unix port behind a pseudo-terminal.

    python -m tools.simboard start [--dir build/simboard]   prints the pty to use as PORT
    python -m tools.simboard stop  [--dir build/simboard]
    mpremote connect build/simboard/pty resume ls :           drive it like a board

`socat` joins a pty to a `micropython` REPL whose working directory (`DIR/flash`) stands in
for the board's filesystem and whose path is a board's ('', .frozen, lib). mpremote's raw
REPL works through it; pass `resume` because the unix port has no soft reset. `make deploy
BOARD=... PORT=DIR/pty RESUME=1` copies the bundle into DIR/flash, and
`mpremote connect DIR/pty resume exec "import main"` runs the firmware there (WiFi is the
fake radio on this port; see docs/firmware.md).
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = ROOT / "build" / "simboard"


def _micropython():
    here = Path(sys.executable).parent / "micropython"
    found = str(here) if here.exists() else shutil.which("micropython")
    if not found:
        raise SystemExit("micropython not found: run `make venv`")
    return found


class SimBoard:
    def __init__(self, directory=DEFAULT_DIR):
        self.dir = Path(directory).resolve()
        self.flash = self.dir / "flash"
        self.pty = self.dir / "pty"
        self.pidfile = self.dir / "socat.pid"
        self.proc = None

    def command(self):
        exec_arg = "EXEC:%s,pty,raw,echo=0,stderr,setsid,ctty" % _micropython()
        return ["socat", "PTY,link=%s,raw,echo=0" % self.pty, exec_arg]

    def start(self, timeout=10):
        if not shutil.which("socat"):
            raise SystemExit("socat not found: apt-get install socat")
        self.flash.mkdir(parents=True, exist_ok=True)
        if self.pty.exists() or self.pty.is_symlink():
            self.pty.unlink()
        env = dict(os.environ, MICROPYPATH=":.frozen:lib")  # a board's sys.path
        # A session of its own, so stop() can end socat and the REPL it spawned together.
        self.proc = subprocess.Popen(
            self.command(),
            cwd=str(self.flash),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.pidfile.write_text(str(self.proc.pid))
        deadline = time.monotonic() + timeout
        while not self.pty.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("socat did not create %s" % self.pty)
            time.sleep(0.05)
        return self

    def stop(self):
        pid = self.proc.pid if self.proc else None
        if pid is None and self.pidfile.exists():
            pid = int(self.pidfile.read_text())
        if pid is not None:
            try:
                os.killpg(pid, signal.SIGTERM)  # the group socat leads (start_new_session)
            except ProcessLookupError:
                pass
            if self.proc is not None:
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    os.killpg(pid, signal.SIGKILL)
                    self.proc.wait(5)
        if self.pidfile.exists():
            self.pidfile.unlink()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="python -m tools.simboard", description=__doc__.split("\n")[0]
    )
    ap.add_argument("cmd", choices=("start", "stop"))
    ap.add_argument("--dir", default=str(DEFAULT_DIR))
    args = ap.parse_args(argv)
    board = SimBoard(args.dir)
    if args.cmd == "start":
        board.start()
        board.proc = None  # keeps running after this command; `stop` finds it by pid file
        print(board.pty)
    else:
        board.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
