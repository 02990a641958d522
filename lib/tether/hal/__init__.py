"""Hardware layer: one small module per concern, one implementation per port.

- network: WiFi station drivers (esp32, cyw43, nina, fake) and the bring-up policy.
- clock: SNTP, the port's epoch normalised to Unix time, periodic resync.
- watchdog: the hardware watchdog (a fake on the unix port) and the progress guard.
- se05x: the secure element, created lazily (no pin is touched at import).
- fakes: the unix port's stand-ins for `network`, the RTC, the WDT and the SE05x.

Nothing is imported here: a board pays only for the modules it uses.
"""
