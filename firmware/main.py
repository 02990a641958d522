# Tether main.py: runs after boot.py. The firmware lives in tether_firmware (precompiled or
# frozen); see docs/firmware.md. On the unix port: micropython firmware/main.py [settings]
import sys

import tether_firmware

rc = tether_firmware.main()
if rc and sys.platform in ("linux", "darwin"):  # a board stays in the REPL instead
    sys.exit(rc)
