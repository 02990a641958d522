"""A local Arduino IoT Cloud emulator: MQTT broker, cloud behaviour, web dashboard.

See docs/emulator.md. `python -m tools.cloudsim --help` for the command line.
"""

from .knobs import REPLY_KINDS, Knobs
from .sim import CloudSim

__all__ = ["CloudSim", "Knobs", "REPLY_KINDS"]
