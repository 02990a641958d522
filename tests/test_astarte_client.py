"""tether.astarte.DeviceMqtt against the Astarte emulator, on CPython and the unix port.

The fidelity flow (tests/test_astarte_sdk_fidelity.astarte_flow) runs Tether through the
very same steps as the official SDK, with tests/ref/astarte_tether_driver.py speaking the
SDK driver's JSON-lines protocol. Then what the SDK does not do: a reboot keeps the
properties and does not pair again; a malformed server message leaves the client connected.
"""

import os
import sys
from pathlib import Path

import pytest
from mpy import micropython_cmd, micropython_env
from test_astarte_sdk_fidelity import (  # noqa: F401
    COMMANDS,
    DEV_PROPS,
    IFACES,
    SENSORS,
    SRV_PROPS,
    Driver,
    astarte_flow,
    new_device_id,
)

from tools.cloudsim import CloudSim

ROOT = Path(__file__).resolve().parent.parent
DRIVER = ROOT / "tests" / "ref" / "astarte_tether_driver.py"
INTERPRETERS = ["cpython", "micropython"]

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def astarte_sim(tmp_path):
    sim = CloudSim(tmp_path / "cloudsim", clouds=["astarte"], dashboard=False).start()
    try:
        yield sim
    finally:
        sim.stop()


def tether_client(workdir, sim, interp):
    ca = str(sim.ca.cert_pem_path)

    def start(device_id, realm, pairing_url, persistency_dir, interfaces_dir):
        args = [device_id, realm, pairing_url, str(persistency_dir), str(interfaces_dir), ca]
        if interp == "micropython":
            cmd, env = micropython_cmd(DRIVER, *args), micropython_env()
        else:
            cmd = [sys.executable, str(DRIVER)] + args
            env = dict(os.environ, PYTHONPATH=str(ROOT / "lib"), PYTHONUNBUFFERED="1")
        log = Path(workdir) / (
            "tether-%s-%d.log" % (interp, len(list(Path(workdir).glob("*.log"))))
        )
        return Driver(cmd, env, str(log))

    return start


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_tether_runs_the_whole_flow(astarte_sim, tmp_path, interp):
    obs = astarte_flow(astarte_sim, tether_client(tmp_path, astarte_sim, interp), tmp_path)
    # Tether writes the producer purge list's size header big-endian, as the spec says.
    assert [p["header"] for p in obs["purges"]] == ["big", "big"]


def _start(sim, tmp_path, interp, device_id=None, persist=None):
    astarte = sim.clouds["astarte"]
    astarte.add_interfaces_dir(IFACES)
    device_id = device_id or new_device_id()
    persist = persist or (tmp_path / "persistency")
    persist.mkdir(parents=True, exist_ok=True)
    start = tether_client(tmp_path, sim, interp)
    return astarte, device_id, start(device_id, "test", astarte.pairing_url, persist, IFACES)


def _connected(client, after=0, timeout=20):
    client.wait(lambda o: o.get("ev") == "connected", timeout, after, "on_connected")


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_reboot_keeps_properties_and_does_not_pair_again(astarte_sim, tmp_path, interp):
    astarte, device_id, client = _start(astarte_sim, tmp_path, interp)
    try:
        secret = client.call("register", jwt=astarte.agent_jwt())
        astarte.set_server_property(device_id, SRV_PROPS, "/threshold", 12.5)
        client.call("connect", secret=secret)
        _connected(client)
        assert client.data(SRV_PROPS, "/threshold") == 12.5
        client.call("send", interface=DEV_PROPS, path="/name", value="board-1")
        client.call("send", interface=DEV_PROPS, path="/slot1/level", value=0)  # falsy: kept
        astarte.wait_property(device_id, DEV_PROPS, "/slot1/level", 0)
        client.call("disconnect")
        client.wait(lambda o: o.get("ev") == "disconnected", 10)
    finally:
        client.close()
    dev = astarte.find(device_id, "test")
    assert len(dev.certs) == 1
    key = (tmp_path / "persistency" / device_id / "crypto" / "device.key").read_bytes()

    # The reboot: a new process, the same flash. The server forgets the device properties
    # (as if its cache was lost): the resync from flash must bring them back.
    with astarte_sim.registry.lock:
        dev.props.clear()
    _, _, client = _start(astarte_sim, tmp_path, interp, device_id)
    try:
        client.call("open", secret=secret)
        props = {(i, p): v for i, _m, p, v in client.call("props")}
        assert props == {
            (SRV_PROPS, "/threshold"): 12.5,
            (DEV_PROPS, "/name"): "board-1",
            (DEV_PROPS, "/slot1/level"): 0,
        }
        client.call("connect", secret=secret)
        _connected(client)
        astarte.wait_property(device_id, DEV_PROPS, "/name", "board-1")
        astarte.wait_property(device_id, DEV_PROPS, "/slot1/level", 0)
        astarte.wait(lambda: len(dev.purges) >= 2, 10)
        assert sorted(dev.purges[-1]["entries"]) == [
            DEV_PROPS + "/name",
            DEV_PROPS + "/slot1/level",
        ]
        assert len(dev.certs) == 1  # not paired again: the stored key and certificate
        assert (tmp_path / "persistency" / device_id / "crypto" / "device.key").read_bytes() == key
        assert astarte.rejected(device_id) == []
    finally:
        client.close()


def _session(sim, device_id):
    for s in list(sim.mqtt.sessions.values()):
        if s.device is not None and s.device.id == device_id:
            return s
    raise AssertionError("no session for %s" % device_id)


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_malformed_server_messages_leave_the_client_connected(astarte_sim, tmp_path, interp):
    import zlib

    import bson as pybson  # pymongo's

    sim = astarte_sim
    astarte, device_id, client = _start(sim, tmp_path, interp)
    try:
        secret = client.call("register", jwt=astarte.agent_jwt())
        astarte.set_server_property(device_id, SRV_PROPS, "/threshold", 12.5)
        client.call("connect", secret=secret)
        _connected(client)
        assert client.data(SRV_PROPS, "/threshold") == 12.5
        base = "test/%s/" % device_id
        s = _session(sim, device_id)
        bomb = b"\x00\x00\x00\x10" + zlib.compress(b"a" * 1000000)
        corpus = [
            (SRV_PROPS + "/threshold", b"\x05\x00\x00"),  # bad BSON
            (SRV_PROPS + "/threshold", pybson.encode({"v": 3})),  # int for a double
            (SRV_PROPS + "/threshold", pybson.encode({"x": 1.0})),  # no "v"
            (SRV_PROPS + "/nope/deeper", pybson.encode({"v": 1.0})),  # no such mapping
            ("control/consumer/properties", bomb),  # inflates past the bound
            ("org.unknown.Iface/a", pybson.encode({"v": 1})),  # not in the introspection
            (DEV_PROPS + "/name", pybson.encode({"v": "x"})),  # a device-owned interface
            (SRV_PROPS + "/threshold", b"\x00" * 200000),  # 200 KB
        ]
        mark = client.mark()
        for suffix, payload in corpus:
            assert sim.call(sim.mqtt.publish_to, s, base + suffix, payload, 2, True), suffix
        assert astarte.set_server_property(device_id, SRV_PROPS, "/slot1/enabled", True)
        assert client.data(SRV_PROPS, "/slot1/enabled", mark) is True
        stats = client.call("stats")
        assert stats["bad_messages"] == 7, stats
        assert stats["mqtt_oversize_dropped"] == 1, stats
        assert client.call("is_connected") is True
        assert not any(o.get("ev") in ("disconnected", "data") and o.get("path") == "/threshold"
                       for o in client.lines[mark:])  # fmt: skip
        props = {(i, p): v for i, _m, p, v in client.call("props")}
        assert props[(SRV_PROPS, "/threshold")] == 12.5  # nothing bad was stored or purged
    finally:
        client.close()


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_offline_guaranteed_data_is_delivered_unreliable_counted(astarte_sim, tmp_path, interp):
    sim = astarte_sim
    astarte, device_id, client = _start(sim, tmp_path, interp)
    try:
        secret = client.call("register", jwt=astarte.agent_jwt())
        client.call("connect", secret=secret)
        _connected(client)
        dev = astarte.find(device_id, "test")
        mark = client.mark()
        sim.set_knobs(astarte_refuse_certs=True)
        sim.restart_broker()  # the pairing API stays up; the broker refuses us meanwhile
        client.wait(lambda o: o.get("ev") == "disconnected", 20, mark)
        for i in range(3):
            client.call("send", interface=SENSORS, path="/s%d/temperature" % i, value=20.0 + i,
                        timestamp_ms=1700000000000 + i)  # fmt: skip
        client.call("send", interface=DEV_PROPS, path="/name", value="offline")
        assert client.call("is_connected") is False
        sim.set_knobs(astarte_refuse_certs=False)
        _connected(client, mark, 30)
        for i in range(3):
            rec = astarte.wait_datastream(device_id, SENSORS, "/s%d/temperature" % i)
            assert rec["value"] == 20.0 + i
        astarte.wait_property(device_id, DEV_PROPS, "/name", "offline")
        assert astarte.rejected(device_id) == [] and dev.connected
    finally:
        client.close()


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_reconnects_when_pairing_was_down_at_the_drop(astarte_sim, tmp_path, interp):
    """What kills the SDK (test_sdk_never_reconnects_when_pairing_was_down_at_the_drop)."""
    astarte, device_id, client = _start(astarte_sim, tmp_path, interp)
    try:
        secret = client.call("register", jwt=astarte.agent_jwt())
        client.call("connect", secret=secret)
        _connected(client)
        mark = client.mark()
        astarte_sim.restart()  # the pairing API goes down with the broker
        client.wait(lambda o: o.get("ev") == "disconnected", 20, mark)
        _connected(client, mark, 30)
        client.call("send", interface=SENSORS, path="/s1/temperature", value=1.5,
                    timestamp_ms=1700000000000)  # fmt: skip
        assert astarte.wait_datastream(device_id, SENSORS, "/s1/temperature")["value"] == 1.5
    finally:
        client.close()


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_revoked_certificate_is_renewed(astarte_sim, tmp_path, interp):
    astarte, device_id, client = _start(astarte_sim, tmp_path, interp)
    try:
        secret = client.call("register", jwt=astarte.agent_jwt())
        client.call("connect", secret=secret)
        _connected(client)
        dev = astarte.find(device_id, "test")
        key = (tmp_path / "persistency" / device_id / "crypto" / "device.key").read_bytes()
        astarte.revoke_certificates(device_id)
        mark = client.mark()
        astarte_sim.restart_broker()  # the broker refuses the revoked certificate
        _connected(client, mark, 30)
        assert len(dev.certs) == 2  # verify said no: a new certificate, the same key
        assert (tmp_path / "persistency" / device_id / "crypto" / "device.key").read_bytes() == key
    finally:
        client.close()


@pytest.mark.parametrize("key_type", ["rsa", "ec"])
def test_register_with_private_key(astarte_sim, key_type):
    """RS256 for an RSA realm key, ES256 for an EC one (the SDK signs RS256 only, and its
    function fails with PyJWT 2)."""
    from tether.astarte import DeviceAlreadyRegisteredError, register_device_with_private_key

    astarte = astarte_sim.clouds["astarte"]
    realm = astarte.add_realm("r" + key_type, key_type=key_type)
    pem = astarte.realm_private_key_pem(realm.name)
    device_id = new_device_id()
    ca = str(astarte_sim.ca.cert_pem_path)
    secret = register_device_with_private_key(
        device_id, realm.name, pem, astarte.pairing_url, ca=ca
    )
    dev = astarte.find(device_id, realm.name)
    assert dev is not None and dev.secret == secret
    with astarte_sim.registry.lock:
        dev.secret_used = True
    with pytest.raises(DeviceAlreadyRegisteredError):
        register_device_with_private_key(device_id, realm.name, pem, astarte.pairing_url, ca=ca)


def test_firmware_profile_with_a_flash_outbox(astarte_sim, tmp_path):
    """`"cloud": "astarte"` through the firmware's profile, in-process: guaranteed data made
    offline goes to the flash outbox (a tether.store.Store) and is delivered after."""
    import asyncio
    import shutil

    from tether.astarte import profile
    from tether.store import Store

    sim = astarte_sim
    astarte = sim.clouds["astarte"]
    astarte.add_interfaces_dir(IFACES)
    device_id = new_device_id()
    jwt = astarte.agent_jwt()
    from tether.astarte import register_device_with_jwt_token

    ca = str(sim.ca.cert_pem_path)
    secret = register_device_with_jwt_token(device_id, "test", jwt, astarte.pairing_url, ca=ca)
    shutil.copytree(IFACES, tmp_path / "interfaces")
    shutil.copy(ca, tmp_path / "ca.pem")
    settings = {
        "cloud": "astarte",
        "device_id": device_id,
        "astarte": {"realm": "test", "pairing_url": astarte.pairing_url, "ca": "ca.pem"},
        "_secrets": {"astarte_credentials_secret": secret},
        "_dir": str(tmp_path),
    }
    got = []

    async def main():
        client = profile.make_client(settings)
        client.store = Store(str(tmp_path / "store"))
        client.set_events_callbacks(on_data_received=lambda d, i, p, v: got.append((i, p, v)))
        client.connect()  # in a running loop: starts the client task, returns at once
        await asyncio.sleep(0)
        try:
            assert await client.wait(lambda: client.connected, 15000)
            sim.set_knobs(astarte_refuse_certs=True)
            await asyncio.get_running_loop().run_in_executor(None, sim.restart_broker)
            assert await client.wait(lambda: not client.connected, 15000)
            for i in range(3):
                client.send(SENSORS, "/s%d/count" % i, i, _dt(1700000000000 + i))
            assert client.store.depth == 3  # on flash, not in RAM
            sim.set_knobs(astarte_refuse_certs=False)
            assert await client.wait(lambda: client.connected, 30000)
            assert await client.flush(10000)
            return client.stats()
        finally:
            await client.adisconnect()

    stats = asyncio.run(main())
    for i in range(3):
        assert astarte.wait_datastream(device_id, SENSORS, "/s%d/count" % i)["value"] == i
    assert stats["sent"] >= 3 and stats["bad_messages"] == 0
    assert astarte.rejected(device_id) == []


def _dt(ms):
    import datetime

    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_precompiled_interfaces(astarte_sim, tmp_path, interp):
    """tools/astarte_ifc.py compiles the interface JSON on the host; the device reads only
    the compact .ifc files (no parser) and the emulator sees the same introspection, takes
    its datastreams and delivers a server property."""
    from tools.astarte_ifc import main as ifc

    sim = astarte_sim
    astarte = sim.clouds["astarte"]
    astarte.add_interfaces_dir(IFACES)
    out = tmp_path / "ifc"
    assert ifc([str(IFACES), "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(
        p.stem + ".ifc" for p in IFACES.glob("*.json")
    )
    device_id = new_device_id()
    (tmp_path / "persistency").mkdir()
    start = tether_client(tmp_path, sim, interp)
    client = start(device_id, "test", astarte.pairing_url, tmp_path / "persistency", out)
    try:
        secret = client.call("register", jwt=astarte.agent_jwt())
        astarte.set_server_property(device_id, SRV_PROPS, "/threshold", 2.5)
        client.call("connect", secret=secret)
        _connected(client)
        assert client.data(SRV_PROPS, "/threshold") == 2.5
        client.call("send", interface=SENSORS, path="/s1/temperature", value=1.5,
                    timestamp_ms=1700000000000)  # fmt: skip
        assert astarte.wait_datastream(device_id, SENSORS, "/s1/temperature")["value"] == 1.5
        intro = astarte.introspection(device_id)
        assert sorted(intro) == sorted(p.stem for p in IFACES.glob("*.json")), intro
        assert astarte.rejected(device_id) == []
    finally:
        client.close()


def test_precompile_names_the_bad_field(tmp_path, capsys):
    from tools.astarte_ifc import main as ifc

    bad = tmp_path / "bad.json"
    bad.write_text('{"interface_name": "org.x.Y", "version_major": 1, "version_minor": 0, '
                   '"type": "datastream", "ownership": "device", "mappings": [{"endpoint": '
                   '"/a", "type": "double", "reliability": "sometimes"}]}')  # fmt: skip
    assert ifc([str(bad), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "bad.json" in err and "reliability 'sometimes'" in err, err


def test_ignore_ssl_errors_warns_at_every_connect(astarte_sim, tmp_path):
    """ignore_ssl_errors=True (no CA at all): pairing and broker TLS are not verified, and
    the client says so at every connect, not once."""
    import asyncio
    import io

    from tether import log
    from tether.astarte import DeviceMqtt, register_device_with_jwt_token

    sim = astarte_sim
    astarte = sim.clouds["astarte"]
    astarte.add_interfaces_dir(IFACES)
    device_id = new_device_id()
    url = astarte.pairing_url
    secret = register_device_with_jwt_token(
        device_id, "test", astarte.agent_jwt(), url, ignore_ssl_errors=True
    )
    # without ignore_ssl_errors and without the test CA, the pairing API is not trusted
    with pytest.raises(Exception) as info:
        register_device_with_jwt_token(new_device_id(), "test", astarte.agent_jwt(), url)
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value) or "certificate" in str(info.value)
    (tmp_path / "p").mkdir()
    out = io.StringIO()
    log.basicConfig(level=log.INFO, stream=out)

    async def main():
        d = DeviceMqtt(device_id, "test", secret, url, tmp_path / "p", ignore_ssl_errors=True)
        d.add_interfaces_from_dir(IFACES)
        d.connect()
        await asyncio.sleep(0)
        try:
            assert await d.wait(lambda: d.connected, 15000)
            await asyncio.get_running_loop().run_in_executor(None, sim.restart_broker)
            assert await d.wait(lambda: not d.connected, 15000)
            assert await d.wait(lambda: d.connected, 30000)
        finally:
            await d.adisconnect()

    try:
        asyncio.run(main())
    finally:
        log.basicConfig(level=log.INFO)
    text = out.getvalue()
    assert text.count("ignore_ssl_errors: TLS certificates are NOT verified") == 2, text


def _away(sim, client, device_id):
    """Drop the connection and keep the device out (CONNACK refused) until _back()."""
    mark = client.mark()
    sim.set_knobs(refuse_connect=True)
    sim.drop(device_id, "astarte")
    client.wait(lambda o: o.get("ev") == "disconnected", 20, mark)
    return mark


def _back(sim, client, mark):
    sim.set_knobs(refuse_connect=False)
    _connected(client, mark, 40)


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_persistent_session_skips_the_resync_only_when_kept(astarte_sim, tmp_path, interp):
    sim = astarte_sim
    astarte, device_id, client = _start(sim, tmp_path, interp)
    try:
        secret = client.call("register", jwt=astarte.agent_jwt())
        client.call("connect", secret=secret, persistent_session=True)
        _connected(client)
        dev = astarte.find(device_id, "test")
        assert (dev.empty_cache, dev.introspections) == (1, 1)  # a boot: clean and full
        client.call("send", interface=DEV_PROPS, path="/slot1/level", value=3)
        astarte.wait_property(device_id, DEV_PROPS, "/slot1/level", 3)

        # CleanSession 0 now, but the broker has no session (the first was clean): full.
        mark = _away(sim, client, device_id)
        _back(sim, client, mark)
        assert (dev.empty_cache, dev.introspections) == (2, 2)
        assert client.call("stats")["resumed"] == 0

        # The broker kept the session: while away the server set a property and the
        # device set and unset its own; after the reconnect no resync, and all of it arrives.
        mark = _away(sim, client, device_id)
        assert astarte.set_server_property(device_id, SRV_PROPS, "/threshold", 7.5) is False
        client.call("send", interface=DEV_PROPS, path="/name", value="away")
        client.call("unset", interface=DEV_PROPS, path="/slot1/level")
        _back(sim, client, mark)
        assert client.data(SRV_PROPS, "/threshold", mark) == 7.5
        astarte.wait_property(device_id, DEV_PROPS, "/name", "away")
        astarte.wait_property(device_id, DEV_PROPS, "/slot1/level", unset=True)
        assert (dev.empty_cache, dev.introspections) == (2, 2)
        assert client.call("stats")["resumed"] == 1
        sim.wait_event(device_id, "connected", "session present")
        client.call("send", interface=SENSORS, path="/s1/temperature", value=2.5,
                    timestamp_ms=1700000000000)  # fmt: skip
        assert astarte.wait_datastream(device_id, SENSORS, "/s1/temperature")["value"] == 2.5

        # Astarte clears the session (it lost track of the device): full resync again.
        mark = client.mark()
        assert astarte.clear_session(device_id)
        _connected(client, mark, 40)
        astarte.wait(lambda: dev.empty_cache == 3, 10)
        assert dev.introspections == 3 and client.call("stats")["resumed"] == 1
        assert astarte.rejected(device_id) == []
    finally:
        client.close()
