"""Smallest MicroPython heap for Tether's Azure client (issue 12's unix-port figure).

    .venv/bin/python -m bench.azure_memory

Scenario on the unix port against the emulator (TLS, SAS): DPS register, hub connect, 10
telemetry messages, a twin GET and a reported patch, one direct method answered. The
library is compiled to .mpy first (and run from .py for comparison); the figure is the
smallest `-X heapsize` that completes it, by bisection (a failure is tried twice). On the
unix port mbedTLS allocates from the MicroPython heap, so the TLS session is included.
"""

import json
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "lib"), str(ROOT)]

# The same work for both scenarios: 10 telemetry, a twin round trip, one method answered.
_WORK = r"""
    for i in range(10):
        m = Message('{"n": %d}' % i, content_type="application/json")
        m.custom_properties["seq"] = str(i)
        await c.send_message(m)
    await c.get_twin()
    await c.patch_twin_reported_properties({"fw": "1.0"})
    done = []

    async def on_method(req):
        await c.send_method_response(MethodResponse.create_from_method_request(req, 200, {}))
        done.append(1)

    c.on_method_request_received = on_method
    print("READY")
    while not done:
        await asyncio.sleep(0.02)
    gc.collect()
    print("HEAP", gc.mem_alloc())  # still connected: what stays
"""

SCENARIO = (
    r"""
import asyncio, json, sys, gc
from tether.azure import Message, MethodResponse
from tether.azure.aio import IoTHubDeviceClient, ProvisioningDeviceClient

cfg = json.loads(open(sys.argv[1]).read())
ca = open(cfg["ca_der"], "rb").read()


async def main():
    p = ProvisioningDeviceClient.create_from_symmetric_key(
        cfg["dps_host"], cfg["reg"], cfg["id_scope"], cfg["key"], server_verification_cert=ca)
    r = await p.register()
    del p
    st = r.registration_state
    c = IoTHubDeviceClient.create_from_symmetric_key(
        cfg["key"], st.assigned_hub, st.device_id, server_verification_cert=ca)
    await c.connect()
"""
    + _WORK
    + r"""    await c.shutdown()
    gc.collect()
    print("DONE")


asyncio.run(main())
"""
)


def _trial(sim, azure, script, lib, heap_kb, tmp, lines=None):
    """True if the scenario finished in a heap_kb KB heap; its output goes to `lines`."""
    from mpy import micropython_binary

    reg = "mem-" + uuid.uuid4().hex[:8]
    key = azure.add_enrollment(reg).key
    cfg = tmp / (reg + ".json")
    cfg.write_text(
        json.dumps(
            {
                "reg": reg,
                "key": key,
                "dps_host": azure.dps_host,
                "id_scope": azure.id_scope,
                "ca_der": str(sim.ca.cert_der_path),
            }
        )
    )
    env = {"MICROPYPATH": ".frozen:%s" % lib, "PATH": "/usr/bin:/bin"}
    cmd = [micropython_binary(), "-X", "heapsize=%dk" % heap_kb, str(script), str(cfg)]
    proc = subprocess.Popen(cmd, env=env, cwd=str(ROOT), stdout=subprocess.PIPE, text=True)
    out = []

    def read():
        for line in proc.stdout:
            out.append(line.strip())

    t = threading.Thread(target=read, daemon=True)
    t.start()
    deadline = time.monotonic() + 20
    try:
        while "READY" not in out and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if "READY" in out:
            try:
                sim.registry.wait(
                    lambda: "$iothub/methods/POST/#" in sim.device(reg, "azure").subscriptions,
                    5,
                )
                azure.invoke_method(reg, "ping", {}, timeout_s=5)
            except Exception:
                pass
        proc.wait(max(1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    t.join(2)
    if lines is not None:
        lines.extend(out)
    return "DONE" in out


def connected_heap_kb(lines):
    """The HEAP line of a finished trial's output, in KB (None if it did not finish)."""
    for line in lines:
        if line.startswith("HEAP ") and "DONE" in lines:
            return round(int(line.split()[1]) / 1024, 1)
    return None


# The same steps through the firmware's profile (`"cloud": "azure"` in settings.json): DPS
# runs as the client's "dps" stage and its module is dropped again before the hub connect.
PROFILE_SCENARIO = (
    r"""
import asyncio, json, sys, gc
from tether.azure import Message, MethodResponse
from tether.azure.profile import make_client

cfg = json.loads(open(sys.argv[1]).read())
settings = {
    "cloud": "azure",
    "azure": {"id_scope": cfg["id_scope"], "registration_id": cfg["reg"],
              "provisioning_host": cfg["dps_host"], "cache": cfg["ca_der"] + cfg["reg"]},
    "credentials": {"ca": cfg["ca_der"]},
    "_secrets": {"symmetric_key": cfg["key"]},
}


async def main():
    c = make_client(settings)
    c.time_synced = True
    task = asyncio.create_task(c.run())
"""
    + _WORK
    + r"""    c.stop()
    await task
    gc.collect()
    print("DONE")


asyncio.run(main())
"""
)

IMPORTS = r"""
import gc, sys
gc.collect()
b0 = gc.mem_alloc()
out = []
for name in sys.argv[1:]:
    __import__(name)
    gc.collect()
    out.append(gc.mem_alloc() - b0)
print(" ".join(str(n) for n in out))
"""
# What each layer adds to the heap when imported in this order (from .mpy): the core's
# cloud base, then the hub client (tether.azure.aio.IoTHubDeviceClient: device, hub,
# features, bag, models, exceptions, common), then DPS.
IMPORT_STEPS = (
    ("asyncio", "asyncio"),
    ("core cloud base (tether.cloud.client)", "tether.cloud.client"),
    ("Azure hub client (tether.azure.device + deps)", "tether.azure.device"),
    ("Azure DPS (tether.azure.dps)", "tether.azure.dps"),
)


def import_costs(lib, tmp):
    """[(label, KB added)] of IMPORT_STEPS on the unix port, from `lib`."""
    from mpy import micropython_binary

    script = Path(tmp) / "imports.py"
    script.write_text(IMPORTS)
    env = {"MICROPYPATH": ".frozen:%s" % lib, "PATH": "/usr/bin:/bin"}
    names = [m for _, m in IMPORT_STEPS]
    out = subprocess.run(
        [micropython_binary(), str(script)] + names,
        env=env,
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=60,
    )
    sizes = [int(n) for n in out.stdout.split()]
    rows, prev = [], 0
    for (label, _), n in zip(IMPORT_STEPS, sizes):
        rows.append(("import heap added: " + label, round((n - prev) / 1024, 1)))
        prev = n
    return rows


def smallest_heap(sim, azure, script, lib, tmp, lo=32, hi=256, step=4):
    from bench.heapsearch import smallest, twice

    def ok(kb):
        return _trial(sim, azure, script, lib, kb, tmp)

    return smallest(twice(ok), lo, hi, step, grow_to=2048)


def run():
    from azure_emu import start_sim

    from bench.core_memory import compile_mpy

    tmp = Path(tempfile.mkdtemp(prefix="azure-mem-"))
    script = tmp / "scenario.py"
    script.write_text(SCENARIO)
    profile = tmp / "profile_scenario.py"
    profile.write_text(PROFILE_SCENARIO)
    mpy = compile_mpy(ROOT / "lib", tmp / "mpy")
    sim, azure = start_sim(tmp / "sim")
    rows = import_costs(mpy, tmp)
    what = "smallest heap, DPS+connect+10 telemetry+twin+method"
    try:
        for form, lib in (("mpy", mpy), ("py", ROOT / "lib")):
            kb = smallest_heap(sim, azure, script, lib, tmp)
            rows.append(("%s (.%s)" % (what, form), kb))
        kb = smallest_heap(sim, azure, profile, mpy, tmp)
        rows.append(("%s, firmware profile (.mpy)" % what, kb))
        lines = []
        _trial(sim, azure, script, mpy, 320, tmp, lines)
        rows.append(("heap in use at the end, still connected (.mpy)", connected_heap_kb(lines)))
    finally:
        sim.stop()
    print("%-66s %s" % ("figure (unix port, .mpy unless .py, TLS, SAS)", "KB"))
    for name, kb in rows:
        print("%-66s %s" % (name, kb))
    return rows


if __name__ == "__main__":
    run()
