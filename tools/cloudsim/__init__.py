"""A local multi-cloud emulator: one front (TLS, authentication, ACLs, broker, dashboard)
and one plug-in per cloud; Arduino IoT Cloud first.

See docs/emulator.md. `python -m tools.cloudsim --help` for the command line.
"""

from .core.knobs import Knobs
from .core.plugin import Acl, Listener, Plugin, Refuse, Route
from .plugins.arduino import REPLY_KINDS, codec  # noqa: F401 (tools.cloudsim.codec)
from .sim import CloudSim

__all__ = ["Acl", "CloudSim", "Knobs", "Listener", "Plugin", "REPLY_KINDS", "Refuse", "Route"]
