"""The firmware (firmware/main.py) on the MicroPython unix port with the fake hardware.

Each test writes a settings.json + secrets, starts `micropython firmware/main.py` against
the in-process cloud emulator (tools/cloudsim) and reads the firmware's log. The fakes
(tether.hal.fakes) stand in for WiFi and the RTC and fail like the hardware does.
"""

import json
import re
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest
from cloudsim_fixtures import cloudsim  # noqa: F401
from mpy import ROOT, micropython_cmd, micropython_env

FIRMWARE = ROOT / "firmware"
DEVICE = "e6a1f9b0-0000-4000-8000-00000000f1f1"
THING = "11111111-2222-4333-8444-55555555f1f1"
SECRET = "s3cret-Do-Not-Print-7f3a"
WIFI_PASS = "wifi-Pass-Do-Not-Print-91c2"
pytestmark = pytest.mark.timeout(120)


class Firmware:
    """A firmware process whose output is collected line by line."""

    def __init__(self, settings_path, env_extra=None):
        env = micropython_env(FIRMWARE)
        env.update(env_extra or {})
        self.proc = subprocess.Popen(
            micropython_cmd(FIRMWARE / "main.py", settings_path),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        self.lines = []
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    @property
    def output(self):
        return "\n".join(line for _, line in self.lines)

    def wait_for(self, pattern, timeout=20, start=0):
        """Index of the first line at or after `start` matching pattern."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while time.monotonic() < deadline:
            for i in range(start, len(self.lines)):
                if rx.search(self.lines[i][1]):
                    return i
            if self.proc.poll() is not None and not self._t.is_alive():
                break
            time.sleep(0.02)
        raise AssertionError("no %r in firmware output:\n%s" % (pattern, self.output[-4000:]))

    def wait(self, timeout=30):
        rc = self.proc.wait(timeout)
        self._t.join(5)
        return rc

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._t.join(5)


def write_settings(tmp_path, sim=None, secrets=None, **over):
    settings = {
        "device_id": DEVICE,
        "app": None,
        "watchdog_ms": 5000,
        "log_level": "info",
        "fake": {"assoc_ms": 50},
    }
    if sim is not None:
        settings.update(
            server="127.0.0.1",
            port=sim.ports["password"],
            credentials={"ca": str(sim.ca.cert_der_path)},
        )
    fake = dict(settings["fake"], **over.pop("fake", {}))
    settings.update(over)
    settings["fake"] = fake
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(settings))
    if secrets is None:
        secrets = {"wifi_ssid": "tether-net", "wifi_password": WIFI_PASS, "secret_key": SECRET}
    if isinstance(secrets, str):
        (tmp_path / "secrets.py").write_text(secrets)
    elif secrets:
        (tmp_path / "secrets.json").write_text(json.dumps(secrets))
    return path


def run_firmware(settings_path, run_s=None, timeout=60):
    env = {"TETHER_RUN_S": str(run_s)} if run_s else {}
    fw = Firmware(settings_path, env)
    try:
        rc = fw.wait(timeout)
    finally:
        fw.stop()
    return rc, fw


def test_boots_and_connects_to_the_cloud(cloudsim, tmp_path):  # noqa: F811
    cloudsim.add_device(DEVICE, secret=SECRET, thing_id=THING)
    fw = Firmware(write_settings(tmp_path, cloudsim))
    try:
        i = fw.wait_for(r"tether: connected (\d+) ms after boot", 30)
        ms = int(re.search(r"(\d+) ms", fw.lines[i][1]).group(1))
        print("boot-to-connected on the unix port: %d ms" % ms)
        assert ms < 10000
        cloudsim.wait_connected(DEVICE, timeout=5)
    finally:
        fw.stop()
    assert SECRET not in fw.output and WIFI_PASS not in fw.output


def test_wifi_that_fails_n_times_then_succeeds_backs_off(cloudsim, tmp_path):  # noqa: F811
    cloudsim.add_device(DEVICE, secret=SECRET, thing_id=THING)
    path = write_settings(tmp_path, cloudsim, fake={"wifi_failures": 3})
    fw = Firmware(path)
    try:
        fw.wait_for(r"tether: connected", 40)
    finally:
        fw.stop()
    fails = [ln for _, ln in fw.lines if "attempt" in ln and "failed" in ln]
    assert len(fails) == 3, fw.output
    delays = [int(re.search(r"next in (\d+) ms", ln).group(1)) for ln in fails]
    for ceiling, d in zip((1000, 2000, 4000), delays):
        assert ceiling // 2 <= d <= ceiling, delays
    assert "up after 4 attempt(s)" in fw.output


def test_link_drop_is_recovered(cloudsim, tmp_path):  # noqa: F811
    cloudsim.add_device(DEVICE, secret=SECRET, thing_id=THING)
    control = tmp_path / "wifi-control"
    fw = Firmware(write_settings(tmp_path, cloudsim, fake={"control": str(control)}))
    try:
        i = fw.wait_for(r"cloud connected", 30)
        control.write_text("drop")
        i = fw.wait_for(r"link lost", 10, i)
        i = fw.wait_for(r"cloud disconnected", 10, i)
        fw.wait_for(r"wifi failed: WifiError", 10, i)  # the session's wifi stage: AP gone
        control.write_text("up")
        i = fw.wait_for(r"link up again", 20, i)
        fw.wait_for(r"cloud connected", 30, i)
    finally:
        fw.stop()
    connects = [e for e in cloudsim.events(DEVICE) if e["kind"] == "connected"]
    assert len(connects) >= 2


class SntpServer:
    """SNTP on 127.0.0.1 (a free port) answering with the host's clock."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.served = 0
        self._stop = False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop:
            try:
                req, addr = self.sock.recvfrom(64)
            except OSError:
                continue
            now = time.time() + 2208988800
            resp = bytearray(48)
            resp[0], resp[1] = 0x24, 2  # version 4, server; stratum 2
            resp[24:32] = req[40:48]
            resp[40:48] = struct.pack("!II", int(now), int((now % 1) * 2**32))
            self.sock.sendto(resp, addr)
            self.served += 1

    def close(self):
        self._stop = True
        self._t.join(2)
        self.sock.close()


def test_time_on_a_2000_epoch_board_is_unix_time(cloudsim, tmp_path):  # noqa: F811
    cloudsim.add_device(DEVICE, secret=SECRET, thing_id=THING)
    (tmp_path / "clockapp.py").write_text(
        "from tether.hal import clock\n"
        "def setup(client):\n"
        "    c = clock.get_clock()\n"
        "    print('CLOCK offset=%d port=%d unix=%d' % (c.offset, c.time(), clock.unix_time()))\n"
    )
    sntp = SntpServer()
    try:
        path = write_settings(
            tmp_path,
            cloudsim,
            app="clockapp",
            fake={"epoch": 2000},
            time={"servers": ["127.0.0.1"], "port": sntp.port, "timeout_ms": 1000},
        )
        fw = Firmware(path)
        try:
            i = fw.wait_for(r"CLOCK offset=", 30)
            host_now = time.time()
        finally:
            fw.stop()
    finally:
        sntp.close()
    assert "set from 127.0.0.1" in fw.output
    m = re.search(r"offset=(\d+) port=(\d+) unix=(\d+)", fw.lines[i][1])
    offset, port_s, unix_s = (int(x) for x in m.groups())
    assert offset == 946684800  # the fake RTC counts from 2000 like esp32/stm32
    assert abs(port_s + offset - unix_s) <= 1
    assert abs(unix_s - host_now) <= 3


def test_pem_files_load_and_an_encrypted_key_stops_with_the_command(tmp_path):
    # The PEM armour is decoded on the device: a PEM key and certificate need no openssl.
    from cryptography.hazmat.primitives import serialization

    from tools.pki import make_pki

    paths = make_pki(str(tmp_path / "pki"))
    creds = {"key": paths["device_key_pem"], "cert": paths["device_cert_pem"]}
    settings = write_settings(tmp_path, port=1, server="127.0.0.1", credentials=creds)
    rc, fw = run_firmware(settings, run_s=2)
    assert rc == 0 and "watchdog armed" in fw.output, fw.output  # loaded, then tried to connect
    # A key encrypted with a passphrase cannot be used: stopped with the host command,
    # before the watchdog is armed, the key never printed.
    key = serialization.load_pem_private_key(Path(paths["device_key_pem"]).read_bytes(), None)
    enc = tmp_path / "enc.pem"
    enc.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    creds["key"] = str(enc)
    settings = write_settings(tmp_path, port=1, server="127.0.0.1", credentials=creds)
    rc, fw = run_firmware(settings)
    assert rc == 2, fw.output
    assert "is encrypted" in fw.output and "openssl pkey -in %s" % enc in fw.output, fw.output
    assert enc.read_text().splitlines()[1] not in fw.output  # the key itself is never printed
    assert "watchdog armed" not in fw.output, fw.output


def test_se05x_key_without_the_tls_hook_is_a_clear_error(tmp_path):
    from tools.pki import make_pki

    paths = make_pki(str(tmp_path / "pki"))
    cert = Path(paths["device_cert_der"]).read_bytes()
    settings = write_settings(
        tmp_path,
        port=1,
        server="127.0.0.1",
        credentials={"key": "se05x:token=0x00000064", "cert": "se05x:token=0x00000065"},
        fake={"se05x": {"objects": {"0x65": cert.hex() + "ff" * 100}, "keys": {}}},
    )
    rc, fw = run_firmware(settings)
    assert rc == 2
    assert "ecdsa_sign_callback" in fw.output and "Portenta H7" in fw.output, fw.output
    assert "watchdog armed" not in fw.output, fw.output


def test_missing_wifi_ssid_stops_before_the_watchdog_is_armed(tmp_path):
    # A machine.WDT cannot be stopped: armed before this error, the board would reset into
    # it every watchdog_ms instead of staying usable over USB.
    path = write_settings(tmp_path, port=1, server="127.0.0.1", secrets={"secret_key": SECRET})
    rc, fw = run_firmware(path)
    assert rc == 2 and "wifi_ssid missing" in fw.output, fw.output
    assert "watchdog armed" not in fw.output and "joining" not in fw.output, fw.output


def test_secrets_py_of_the_original_client_is_accepted(cloudsim, tmp_path):  # noqa: F811
    cloudsim.add_device(DEVICE, secret=SECRET, thing_id=THING)
    secrets_py = (
        'WIFI_SSID = "tether-net"\nWIFI_PASS = "%s"\nDEVICE_ID = "%s"\nSECRET_KEY = "%s"\n'
    )
    path = write_settings(tmp_path, cloudsim, secrets=secrets_py % (WIFI_PASS, DEVICE, SECRET))
    data = json.loads(path.read_text())
    del data["device_id"]  # from secrets.py
    data["log_level"] = "debug"  # even at debug level no secret is printed
    path.write_text(json.dumps(data))
    fw = Firmware(path)
    try:
        fw.wait_for(r"tether: connected", 30)
    finally:
        fw.stop()
    assert "joining 'tether-net'" in fw.output
    assert SECRET not in fw.output and WIFI_PASS not in fw.output


def test_safe_mode_file_skips_app_and_cloud(tmp_path):
    (tmp_path / "app.py").write_text("print('APP RAN')\n")
    path = write_settings(tmp_path, port=1, server="127.0.0.1", app="app")
    (tmp_path / "SAFE").write_text("")
    rc, fw = run_firmware(path)
    assert rc == 1
    assert "safe mode (file SAFE present)" in fw.output
    assert "APP RAN" not in fw.output and "joining" not in fw.output


def test_broken_settings_fall_back_to_safe_mode(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text("{not json")
    rc, fw = run_firmware(path)
    assert rc == 2 and "not valid JSON -- safe mode" in fw.output


def test_app_runs_and_a_broken_app_does_not_stop_the_cloud(cloudsim, tmp_path):  # noqa: F811
    cloudsim.add_device(DEVICE, secret=SECRET, thing_id=THING)
    (tmp_path / "badapp.py").write_text(
        "def setup(client):\n    client.register('led', value=1)\n    raise ValueError('oops')\n"
    )
    fw = Firmware(write_settings(tmp_path, cloudsim, app="badapp"))
    try:
        fw.wait_for(r"app setup failed: ValueError: oops", 30)
        fw.wait_for(r"tether: connected", 30)
    finally:
        fw.stop()


def test_example_app_pushes_its_variables(cloudsim, tmp_path):  # noqa: F811
    cloudsim.add_device(DEVICE, secret=SECRET, thing_id=THING)
    (tmp_path / "app.py").write_text((FIRMWARE / "app.py").read_text())
    fw = Firmware(write_settings(tmp_path, cloudsim, app="app"))
    try:
        fw.wait_for(r"tether: connected", 30)
        cloudsim.write(THING, "sw1", True)
        fw.wait_for(r"switch -> True", 10)
        cloudsim.wait_for_value(THING, "led", True, timeout=10)
    finally:
        fw.stop()


def test_watchdog_resets_when_the_chain_hangs(tmp_path):
    # A broker that accepts TCP and then says nothing: the TLS handshake hangs, no stage
    # completes, the guard stops feeding after stall_s and the (fake) watchdog resets.
    blackhole = socket.socket()
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(8)  # never accept()ed: the kernel completes the handshake, nobody talks
    try:
        path = write_settings(
            tmp_path,
            port=blackhole.getsockname()[1],
            server="127.0.0.1",
            insecure=True,
            stall_s=1,
            watchdog_ms=500,
        )
        t0 = time.monotonic()
        rc, fw = run_firmware(path, timeout=30)
    finally:
        blackhole.close()
    assert rc == 3, fw.output
    assert "no progress for 1000 ms" in fw.output and "watchdog reset" in fw.output
    assert time.monotonic() - t0 < 15


def test_a_failing_cloud_is_retried_without_a_reset(tmp_path):
    # Refused connections fail fast: every round makes progress, so no watchdog reset.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    path = write_settings(
        tmp_path, port=dead_port, server="127.0.0.1", insecure=True, stall_s=2, watchdog_ms=500
    )
    rc, fw = run_firmware(path, run_s=4, timeout=30)
    assert rc == 0, fw.output
    assert "tcp failed" in fw.output and "watchdog reset" not in fw.output
    assert "watchdog armed: 500 ms, fed every 125 ms" in fw.output


def test_runs_for_tether_run_s_then_exits_cleanly(cloudsim, tmp_path):  # noqa: F811
    cloudsim.add_device(DEVICE, secret=SECRET, thing_id=THING)
    rc, fw = run_firmware(write_settings(tmp_path, cloudsim), run_s=3)
    assert rc == 0 and "run time over" in fw.output


def test_settings_path_from_the_environment(cloudsim, tmp_path):  # noqa: F811
    cloudsim.add_device(DEVICE, secret=SECRET, thing_id=THING)
    path = write_settings(tmp_path, cloudsim)
    env = micropython_env(FIRMWARE)
    env.update(TETHER_SETTINGS=str(path), TETHER_RUN_S="2")
    proc = subprocess.run(
        micropython_cmd(FIRMWARE / "main.py"),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(tmp_path),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "tether: connected" in proc.stdout


def test_unknown_cloud_profile_is_refused(tmp_path):
    rc, fw = run_firmware(write_settings(tmp_path, cloud="nimbus", port=1))
    assert rc == 2 and "cloud 'nimbus' unknown (one of: arduino, azure" in fw.output
    assert "watchdog armed" not in fw.output, fw.output


def _cert_settings(tmp_path, sim, cert):
    files = sim.device_files(DEVICE)
    return write_settings(
        tmp_path,
        port=sim.ports["certificate"],
        server="127.0.0.1",
        credentials={"key": str(files["key_der"]), "cert": cert, "ca": str(files["ca_der"])},
        secrets={"wifi_ssid": "tether-net", "wifi_password": WIFI_PASS},
        fake={
            "se05x": {
                "objects": {"0x65": files["cert_der"].read_bytes().hex() + "ff" * 200},
                "keys": {},
            }
        },
    )


def test_mutual_tls_with_der_key_and_certificate_files(cloudsim, tmp_path):  # noqa: F811
    cloudsim.add_device(DEVICE, thing_id=THING, certificate=True)
    cert = str(cloudsim.device_files(DEVICE)["cert_der"])
    fw = Firmware(_cert_settings(tmp_path, cloudsim, cert))
    try:
        fw.wait_for(r"tether: connected", 30)
    finally:
        fw.stop()
    connected = [e for e in cloudsim.events(DEVICE) if e["kind"] == "connected"]
    assert connected and "certificate" in connected[0]["text"]


def test_certificate_read_from_the_secure_element_authenticates(cloudsim, tmp_path):  # noqa: F811
    # The certificate comes out of the (fake) SE05x object 0x65, which is 200 bytes larger
    # than the certificate: read with its own length, it is accepted by the broker.
    cloudsim.add_device(DEVICE, thing_id=THING, certificate=True)
    fw = Firmware(_cert_settings(tmp_path, cloudsim, "se05x:token=0x00000065"))
    try:
        fw.wait_for(r"tether: connected", 30)
    finally:
        fw.stop()
    connected = [e for e in cloudsim.events(DEVICE) if e["kind"] == "connected"]
    assert connected and "certificate" in connected[0]["text"]


LEVEL_APP = """
import asyncio


def setup(client):
    client.register("level", value=None, on_write=lambda c, v: print("app: write", v))
    print("app: ready")


async def loop(client):
    seen = None
    while True:
        await asyncio.sleep(0.05)
        try:
            with open(%r) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text and text != seen:
            seen = text
            client["level"] = int(text)
            print("app: level", text)
"""


def test_a_value_changed_offline_survives_a_restart_with_the_default_store(cloudsim, tmp_path):  # noqa: F811
    # No store code in the app: the settings' default store keeps the value on "flash".
    cloudsim.add_device(DEVICE, secret=SECRET, thing_id=THING)
    control = tmp_path / "level"
    (tmp_path / "levelapp.py").write_text(LEVEL_APP % str(control))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    offline = write_settings(tmp_path, cloudsim, app="levelapp", port=dead_port)
    fw = Firmware(offline)
    try:
        fw.wait_for(r"app: ready", 20)
        fw.wait_for(r"tcp failed", 20)  # offline: the cloud cannot be reached
        control.write_text("42")
        fw.wait_for(r"app: level 42", 10)
        fw.proc.kill()  # power cut: only the store survives
        fw.proc.wait(5)
    finally:
        fw.stop()
    control.unlink()  # the next boot must not set the value itself
    online = write_settings(tmp_path, cloudsim, app="levelapp")
    fw = Firmware(online)
    try:
        fw.wait_for(r"1 value\(s\) waiting from an earlier boot", 20)
        assert cloudsim.wait_for_value(THING, "level", 42, timeout=30) == 42
        fw.wait_for(r"app: write 42", 10)  # restored locally too
    finally:
        fw.stop()


def test_diagnostics_are_logged_when_enabled(cloudsim, tmp_path):  # noqa: F811
    cloudsim.add_device(DEVICE, secret=SECRET, thing_id=THING)
    fw = Firmware(write_settings(tmp_path, cloudsim, diagnostics={"interval_s": 1}))
    try:
        i = fw.wait_for(r"diagnostics \{", 30)
        j = fw.wait_for(r"diagnostics \{", 5, i + 1)  # every interval_s
    finally:
        fw.stop()
    for k in (i, j):
        d = json.loads(fw.lines[k][1].split("diagnostics ", 1)[1])
        assert d["state"] == "ready" and d["connects"] == 1 and d["queue_depth"] == 0, d
    assert "uptime_s" in d and "heap_free" in d
    assert SECRET not in fw.output
