"""Tether firmware: settings + credentials -> watchdog -> WiFi -> clock -> cloud + app.

main.py calls `main()`; the work is here so a board runs it precompiled (.mpy or frozen)
instead of compiling a big main.py into RAM at every boot. Reading the settings, secrets
and board defaults is tether_settings. On the unix port:
    micropython firmware/main.py [settings.json]      (or TETHER_SETTINGS=path)
Settings format, secrets, safe mode and the app module: docs/firmware.md.
"""

import asyncio
import sys

from tether import log
from tether.compat import print_exception, ticks_diff, ticks_ms
from tether_settings import (  # noqa: F401 (re-exported: the firmware's settings API)
    CLOUDS,
    SAFE_FILES,
    SECRET_KEYS,
    SettingsError,
    _exists,
    _getenv,
    _join,
    load_board,
    load_secrets,
    load_settings,
    safe_mode_reason,
    settings_path,
)

T0 = ticks_ms()  # boot-to-connected is measured from here
_LEVELS = {"debug": log.DEBUG, "info": log.INFO, "warning": log.WARNING, "error": log.ERROR}

_log = log.getLogger("firmware")


# -- cloud profiles --------------------------------------------------------------------
# One module per cloud, tether.<cloud>.profile, imported only for the cloud the settings
# name: its make_client(settings) returns a tether.cloud.CloudClient, which the firmware
# drives through the base's seams only (add_stage, guard, store, set_diagnostics,
# time_synced, connected, publish, drop, run, stop). An image or bundle carries only the
# clouds it was built with (docs/firmware.md, "Components").


def load_profile(cloud):
    """The profile module of `cloud`; SettingsError when this image or bundle lacks it."""
    name = "tether.%s.profile" % cloud
    try:
        return __import__(name, None, None, ["make_client"])
    except ImportError as exc:
        if ("tether.%s" % cloud) in str(exc) or not str(exc):
            raise SettingsError(
                "cloud %r is not in this image or bundle (build it with the tether-%s "
                "component: docs/firmware.md)" % (cloud, cloud)
            )
        raise SettingsError("cloud %r cannot be loaded: %s: %s" % (cloud, type(exc).__name__, exc))


# -- bring-up ----------------------------------------------------------------------------


class Firmware:
    def __init__(self, settings, board=None):
        self.settings = settings
        self.board = board or {}
        self.guard = None
        self.station = None
        self.client = None
        self.store = None
        self._diag_topic = None
        self.app = None
        self.connected_ms = None
        self._fake = settings.get("fake") or {}

    def progress(self, what):
        if self.guard is not None:
            self.guard.progress(what)

    # watchdog: armed after every check that can refuse the configuration (a machine.WDT
    # cannot be stopped: armed before a fatal error it would reset the board into the same
    # error again and again) and before anything that can hang
    def arm_watchdog(self):
        from tether.hal.watchdog import Guard, make_wdt

        ms = self.settings.get("watchdog_ms", 30000)
        if not ms:
            return
        ms = min(ms, self.board.get("watchdog_max_ms", ms))
        stall_ms = self.settings.get("stall_s", 600) * 1000
        wdt = make_wdt(ms, _watchdog_reset)
        self.guard = Guard(wdt, ms, stall_ms)  # paced on what the hardware really holds
        t = self.guard.timeout_ms
        _log.info("watchdog armed: %d ms, fed every %d ms", t, t // 4)
        asyncio.create_task(self.guard.run())

    def prepare(self):
        """Every check that can refuse the configuration and cannot hang, so a fatal error
        stops the firmware before the watchdog is armed: the WiFi settings, the credential
        files (or SE05x objects), the cloud profile's settings, the store."""
        if self._wifi_kind() != "none":
            self._wifi_secrets()
        profile = load_profile(self.settings["cloud"])
        if "se05x" in self._fake:
            self.settings["_se05x"] = self.fake_se05x()
        try:
            self.client = profile.make_client(self.settings)
        except ValueError as exc:
            if type(exc) is ValueError:  # the profile's settings check; else a credential
                raise SettingsError(str(exc))
            raise
        self.client.time_synced = True  # the firmware sets the clock (time_up) and keeps it
        self.store = self.open_store()
        if self.store is not None:
            self.client.store = self.store
        self.setup_diagnostics()

    def _wifi_kind(self):
        from tether.hal import network

        wcfg = self.settings.get("wifi") or {}
        kind = wcfg.get("driver") or self.board.get("wifi") or "auto"
        if kind == "auto":
            kind = network.default_kind()
        if kind != "none" and kind not in network.KINDS:
            raise SettingsError(
                "wifi.driver %r unknown (one of: none, auto, %s)"
                % (kind, ", ".join(network.KINDS))
            )
        return kind

    def make_station(self):
        from tether.hal import network

        wcfg = self.settings.get("wifi") or {}
        kind = self._wifi_kind()
        if kind == "none":
            return None
        net = None
        if kind == "fake":
            from tether.hal.fakes import FakeNetwork, FakeRadio

            f = self._fake
            radio = FakeRadio(
                fail_first=f.get("wifi_failures", 0),
                no_ip_first=f.get("wifi_no_ip", 0),
                assoc_ms=f.get("assoc_ms", 150),
                control=f.get("control"),
            )
            net = FakeNetwork("cyw43", radio)
        opts = {}
        if wcfg.get("hostname"):
            opts["hostname"] = wcfg["hostname"]
        if kind == "esp32" and "reconnects" in wcfg:
            opts["reconnects"] = wcfg["reconnects"]
        return network.get_network(kind, net, **opts)

    def _wifi_secrets(self):
        secrets = self.settings["_secrets"]
        wcfg = self.settings.get("wifi") or {}
        ssid = secrets.get("wifi_ssid") or wcfg.get("ssid")
        if not ssid:
            raise SettingsError("wifi_ssid missing from the secrets")
        return ssid, secrets.get("wifi_password", ""), wcfg.get("timeout_ms", 15000)

    async def wifi_up(self):
        """First bring-up: retries with backoff (1 s -> 32 s, jitter) until the link is up."""
        from tether.hal.network import bring_up

        ssid, password, timeout = self._wifi_secrets()
        await bring_up(
            self.station,
            ssid,
            password,
            timeout,
            on_attempt=lambda n, err, delay: self.progress("wifi"),
        )

    async def wifi_stage(self):
        """The session's "wifi" stage before every reconnect: one attempt when the link is
        down (full teardown first); the session's backoff spaces the attempts."""
        if self.station.isconnected():
            return
        ssid, password, timeout = self._wifi_secrets()
        cfg = await self.station.connect(ssid, password, timeout)
        _log.info("wifi: link up again, ip %s", cfg[0])

    async def time_up(self):
        from tether.hal import clock

        if "epoch" in self._fake:
            from tether.hal.fakes import FakeClock

            clock.set_clock(FakeClock(self._fake["epoch"]))
        tcfg = self.settings.get("time") or {}
        servers = tuple(tcfg.get("servers") or clock.DEFAULT_SERVERS)
        timeout = tcfg.get("timeout_ms", 3000)
        port = tcfg.get("port", 123)
        ok = await clock.ensure_time(servers, timeout, port)
        if not ok:
            _log.warning("clock not set yet; retrying in the background")
        self.progress("time")
        asyncio.create_task(clock.keep_time(servers, tcfg.get("resync_s", 3600), timeout, port))
        return ok

    def fake_se05x(self):
        # The unix port's fake secure element, handed to the profile as settings["_se05x"].
        from tether.hal import fake_se05x, se05x

        return se05x.SecureElement(fake_se05x.from_settings(self._fake["se05x"]))

    # store-and-forward: on by default, so a value changed offline survives a reboot
    def open_store(self):
        cfg = self.settings.get("store", True)
        if cfg is None or cfg is False:
            return None
        if cfg is True:
            cfg = {}
        if not isinstance(cfg, dict):
            raise SettingsError("store must be an object, true or false")
        seg = cfg.get("segment_bytes", 2048)
        total = cfg.get("max_bytes", 16384)
        if not isinstance(seg, int) or not isinstance(total, int) or seg < 256:
            raise SettingsError("store.segment_bytes (>= 256) and max_bytes must be integers")
        if total // seg < 3:
            raise SettingsError("store.max_bytes must hold 3 segments of %d bytes" % seg)
        path = _join(self.settings.get("_dir", ""), cfg.get("dir", "store"))
        from tether.store import Store

        try:
            store = Store(path, seg_bytes=seg, max_segments=total // seg)
        except OSError as exc:
            # A full or read-only file system: better online without the store than not at all.
            _log.warning(
                "store %s unusable (%r): values changed offline will not survive a reboot",
                path,
                exc,
            )
            return None
        _log.info("store %s: %d value(s) waiting from an earlier boot", path, store.depth)
        return store

    # diagnostics: off by default, so their code (tether_diagnostics) loads only when on
    def setup_diagnostics(self):
        cfg = self.settings.get("diagnostics")
        if cfg:
            import tether_diagnostics

            tether_diagnostics.setup(self, cfg)

    async def diagnostics(self, client, d):
        """The client's diagnostics callback: logged, and published on the configured
        topic (tether_diagnostics.report)."""
        import tether_diagnostics

        await tether_diagnostics.report(client, d, T0, self._diag_topic)

    def start_app(self):
        name = self.settings.get("app", "app")
        if not name:
            return
        base = self.settings.get("_dir")
        if base and base not in sys.path:
            sys.path.insert(0, base)
        try:
            mod = __import__(name)
        except ImportError as exc:
            if name == "app" and "app" in str(exc):
                _log.info("no app module")
                return
            self._app_failed("import", exc)
            return
        except Exception as exc:
            self._app_failed("import", exc)
            return
        try:
            if hasattr(mod, "setup"):
                mod.setup(self.client)
            if hasattr(mod, "loop"):
                asyncio.create_task(self._app_loop(mod))
        except Exception as exc:
            self._app_failed("setup", exc)
            return
        self.app = mod

    async def _app_loop(self, mod):
        try:
            await mod.loop(self.client)
        except Exception as exc:
            self._app_failed("loop", exc)

    def _app_failed(self, where, exc):
        _log.error(
            "app %s failed: %s: %s (the cloud client keeps running)",
            where,
            type(exc).__name__,
            exc,
        )
        print_exception(exc)

    def link_lost(self):
        # The TCP connection cannot outlive the WiFi link on a board: end the round now so
        # the client tears down and reconnects once the link is back.
        self.client.drop()

    def make_led(self):
        """The board's status LED (board.json led_pin / led_active_low), or None."""
        pin = self.board.get("led_pin")
        if pin is None:
            return None
        try:
            from machine import Pin

            led = Pin(pin, Pin.OUT)
        except (ImportError, AttributeError, ValueError, TypeError) as exc:
            _log.warning("status LED %r unusable: %r", pin, exc)
            return None
        low = bool(self.board.get("led_active_low"))
        led.value(1 if low else 0)  # off until connected
        return lambda on: led.value((not on) if low else bool(on))

    async def monitor(self):
        was = False
        led = self.make_led()
        while True:
            now = bool(self.client.connected)
            if led is not None and now != was:
                led(now)  # on while connected to the cloud
            if now:
                self.progress("cloud")
                if self.connected_ms is None:
                    self.connected_ms = ticks_diff(ticks_ms(), T0)
                    print("tether: connected %d ms after boot" % self.connected_ms)
            if now != was:
                _log.info("cloud %s", "connected" if now else "disconnected")
                was = now
            await asyncio.sleep(0.2)

    async def run(self, run_s=None):
        self.prepare()  # a refused configuration stops here, with the watchdog not armed
        self.arm_watchdog()
        self.station = self.make_station()
        if self.station is not None:
            await self.wifi_up()
        await self.time_up()
        self.client.guard = self.guard  # stages, connects and a live connection are progress
        if self.station is not None:
            from tether.hal.network import watch_link

            timeout = (self.settings.get("wifi") or {}).get("timeout_ms", 15000)
            self.client.add_stage("wifi", self.wifi_stage, timeout + 1000, first=True)
            asyncio.create_task(watch_link(self.station, self.link_lost))
        self.start_app()
        if self.store is not None and self.client.store is not self.store:
            self.store.close()  # the app brought its own
            self.store = None
        asyncio.create_task(self.monitor())
        if run_s:
            asyncio.create_task(self._stop_after(run_s))
        await self.client.run()

    async def _stop_after(self, s):
        await asyncio.sleep(s)
        _log.info("run time over (%s s): stopping", s)
        self.client.stop()


def _watchdog_reset():
    # A board resets in hardware; the unix port's fake watchdog ends the process instead.
    print("tether: watchdog reset")
    sys.exit(3)


def main(argv=None):
    argv = sys.argv if argv is None else argv
    path = settings_path(argv)
    try:
        settings = load_settings(path)
    except SettingsError as exc:
        print("tether: %s -- safe mode, the REPL is yours" % exc)
        return 2
    log.setLevel(_LEVELS.get(settings.get("log_level", "info"), log.INFO))
    board = load_board()
    why = safe_mode_reason(settings, board, settings["_dir"])  # a board: "" = the root
    if why:
        print("tether: safe mode (%s): app and cloud skipped, the REPL is yours" % why)
        return 1
    run_s = _getenv("TETHER_RUN_S")
    fw = Firmware(settings, board)
    try:
        asyncio.run(fw.run(float(run_s) if run_s else None))
    except SettingsError as exc:
        print("tether: %s" % exc)
        return 2
    except Exception as exc:
        # CredentialError and friends: say what is wrong, never the secret, stay usable.
        print("tether: stopped: %s: %s" % (type(exc).__name__, exc))
        if not isinstance(exc, (ValueError, OSError)):  # a bug, not a setting: show where
            print_exception(exc)
        return 2
    return 0
