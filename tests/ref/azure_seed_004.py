"""Run examples/azure_device_simulator.py (seed 004, imports changed) against the emulator.

    cd <dir with config.json> && python tests/ref/azure_seed_004.py <emulator CA (DER)>

Two things differ from a real deployment, both outside the program: the emulator's CA
replaces the embedded Azure roots (the program passes no server_verification_cert, so it
trusts the public Azure roots, which the emulator's certificate does not chain to), and the
program's 5 s pause between messages is cut to 50 ms to keep the test short.
"""

import asyncio
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "lib"))

import tether.azure.roots  # noqa: E402
from tether import log  # noqa: E402

log.basicConfig(level=log.WARNING, stream=sys.stderr)
tether.azure.roots.ROOTS = (Path(sys.argv[1]).read_bytes(),)
_sleep = asyncio.sleep
asyncio.sleep = lambda s, *a: _sleep(min(s, 0.05), *a)
runpy.run_path(str(ROOT / "examples" / "azure_device_simulator.py"), run_name="__main__")
