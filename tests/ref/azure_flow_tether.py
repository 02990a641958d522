"""Run tests/ref/azure_flow.py, the SDK's fidelity flow, unchanged on Tether's Azure client.

    python tests/ref/azure_flow_tether.py '<config JSON>'      (PYTHONPATH=lib)

The flow's `azure.iot.device` and `azure.iot.device.aio` imports resolve to tether.azure and
tether.azure.aio (what a user does by editing the two import lines); Tether's log goes to
stderr, where the SDK's own log goes, so stdout holds only the flow's JSON lines.
"""

import runpy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lib"))

import tether.azure  # noqa: E402
import tether.azure.aio  # noqa: E402
from tether import log  # noqa: E402

log.basicConfig(level=log.WARNING, stream=sys.stderr)
sys.modules["azure.iot.device"] = tether.azure
sys.modules["azure.iot.device.aio"] = tether.azure.aio
runpy.run_path(str(Path(__file__).with_name("azure_flow.py")), run_name="__main__")
