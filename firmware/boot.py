# Tether boot.py: runs first after every reset. Kept short on purpose: no network, no
# settings parsing, nothing that can hang, so the REPL is always reachable over USB.
# Safe mode (skip the app and the cloud) is decided in main.py: a file named SAFE at the
# root, or the board's safe-mode pin held low during reset (docs/firmware.md).
import sys

if sys.platform == "esp32":
    try:
        import esp

        esp.osdebug(None)  # esp-idf log lines would interleave with the REPL
    except ImportError:
        pass
