"""Tether: keeps a microcontroller connected to an IoT cloud over MQTT.

The package is split into small modules that a board imports only when it uses them
(see docs/architecture.md). Nothing here is imported eagerly, so `import tether`
costs a few hundred bytes of RAM.
"""

__version__ = "0.1.0"
