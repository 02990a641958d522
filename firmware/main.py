# Tether main.py: runs after boot.py. The firmware lives in tether_firmware (precompiled or
# frozen); see docs/firmware.md. On the unix port: micropython firmware/main.py [settings]
import sys

import tether_firmware

rc = tether_firmware.main()
# Run as a script on a host, the exit status tells the caller what happened; on a board
# (or `import main` at a REPL) a failure leaves the REPL available instead.
if rc and __name__ == "__main__" and sys.platform in ("linux", "darwin"):
    sys.exit(rc)
