"""tether.azure against the Azure emulator plug-in (tools/cloudsim/plugins/azure) over TLS.

- The fidelity flow (tests/test_azure_sdk_fidelity.py's azure_flow: DPS register, hub
  connect, 3 telemetry messages with properties, get_twin + reported patch, one desired
  patch, one direct method, one C2D with properties) run by the very file the official SDK
  runs, tests/ref/azure_flow.py, with its azure.iot.device imports resolved to tether.azure.
- Seed 004's device_simulator.py (examples/azure_device_simulator.py, imports changed):
  DPS with X.509 through a CA enrollment group, then 10 telemetry messages.
- The same flow on the MicroPython unix port (tests/ref/azure_flow_mpy.py: the flow's steps
  and lines, without the `queue` and threads MicroPython lacks).
- Reconnect: the desired document changed while the device was away reaches the handler
  once (reconciled by $version), and telemetry sent while offline arrives in order.
- Refusals: a wrong key is CredentialError, as in the SDK.
"""

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from azure_emu import start_sim
from test_azure_sdk_fidelity import azure_flow

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "lib"))

pytestmark = pytest.mark.timeout(120)

STEPS = ["dps", "connected", "telemetry", "twin", "reported", "ready", "desired", "method"]
STEPS += ["c2d", "done"]


@pytest.fixture
def sim_azure(tmp_path):
    sim, azure = start_sim(tmp_path / "sim")
    try:
        yield sim, azure
    finally:
        sim.stop()


@pytest.mark.parametrize("case", ["sas", "x509", "group", "x509-group"])
def test_tether_runs_the_sdk_flow_on_cpython(tmp_path, sim_azure, case):
    sim, azure = sim_azure
    cmd = [sys.executable, str(ROOT / "tests" / "ref" / "azure_flow_tether.py")]
    lines = azure_flow(sim, azure, cmd, case, tmp_path)
    assert [o["step"] for o in lines if o["step"] != "eof"] == STEPS
    # The hub saw the SDK's username form and one connection; DPS one register + one poll.
    dev = sim.device(lines[0]["device_id"], "azure")
    assert dev.connects == 1


@pytest.mark.parametrize("case", ["sas", "x509", "group", "x509-group"])
def test_tether_runs_the_sdk_flow_on_the_unix_port(tmp_path, sim_azure, case):
    from mpy import micropython_binary, micropython_env

    sim, azure = sim_azure
    cfg = tmp_path / "cfg.json"
    # The config goes through a file: the unix port 1.29 dies on a 256-byte argument.
    script = 'printf "%%s" "$1" > %s && exec %s tests/ref/azure_flow_mpy.py @%s' % (
        cfg, micropython_binary(), cfg,
    )  # fmt: skip
    env_before = dict(os.environ)
    os.environ.update(micropython_env())
    try:
        lines = azure_flow(sim, azure, ["sh", "-c", script, "sh"], case, tmp_path)
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    assert [o["step"] for o in lines if o["step"] != "eof"] == STEPS


def test_seed_004_program_runs_with_only_its_imports_changed(tmp_path, sim_azure):
    sim, azure = sim_azure
    reg = "my-device-001"
    azure.add_group_enrollment("fleet-ca", x509_ca="test-ca")  # the seed's enrollment group
    files = sim.device_files(reg)
    work = tmp_path / "device"
    work.mkdir()
    config = {
        "provisioning_host": azure.dps_host,
        "id_scope": azure.id_scope,
        "registration_id": reg,
        "cert_file": str(files["cert_pem"]),
        "key_file": str(files["key_pem"]),
    }
    (work / "config.json").write_text(json.dumps(config))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "ref" / "azure_seed_004.py"), str(files["ca_der"])],
        cwd=str(work),
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "Status: assigned" in out and "Connected to IoT Hub!" in out
    assert "Telemetry complete!" in out and "[10] Sent:" in out
    sent = azure.wait_telemetry(reg, 10)
    bodies = [json.loads(m["body"]) for m in sent]
    keys = {"temperature", "humidity", "timestamp"}
    assert len(bodies) == 10 and all(set(b) == keys for b in bodies)
    assert sim.device(reg, "azure").auth == "x509-ca"


def _client(azure, sim, device_id, key, **kw):
    from tether.azure.aio import IoTHubDeviceClient

    ca = sim.ca.cert_pem_path.read_text()
    return IoTHubDeviceClient.create_from_symmetric_key(
        key, azure.hub_host, device_id, server_verification_cert=ca, **kw
    )


def test_reconnect_reconciles_desired_and_delivers_offline_telemetry_in_order(sim_azure):
    sim, azure = sim_azure
    dev = azure.add_device("recon")
    azure.set_desired("recon", {"a": 1})

    async def main():
        from tether.azure import Message

        c = _client(azure, sim, "recon", dev.key)
        c.BACKOFF_MIN_MS = c.session.backoff_min_ms = 100
        c.session.backoff_max_ms = 300
        patches = []
        states = []
        c.on_twin_desired_properties_patch_received = patches.append
        c.on_connection_state_change = lambda: states.append(c.connected)
        await c.connect()
        for _ in range(100):
            if patches:
                break
            await asyncio.sleep(0.05)
        assert patches == [{"a": 1, "$version": 2}]
        azure.set_knobs(azure_connect_delay_s=1.0)
        sim.drop("recon")
        assert azure.set_desired("recon", {"b": 2}) == 3
        for i in range(5):  # offline: queued, returned at once
            await asyncio.wait_for(c.send_message(Message("m%d" % i, message_id=str(i))), 2)
        azure.set_knobs(azure_connect_delay_s=0)
        for _ in range(200):
            if len(patches) > 1 and not c._pending():
                break
            await asyncio.sleep(0.05)
        await c.shutdown()
        return patches, states, c.stats()

    patches, states, stats = asyncio.run(asyncio.wait_for(main(), 60))
    assert patches[1] == {"a": 1, "b": 2, "$version": 3} and len(patches) == 2
    sent = azure.wait_telemetry("recon", 5)
    assert [m["body"] for m in sent] == [b"m%d" % i for i in range(5)] or [
        m["body"] for m in sent
    ] == ["m%d" % i for i in range(5)]
    assert [m["properties"]["$.mid"] for m in sent] == [str(i) for i in range(5)]
    assert states[:2] == [True, False] and stats["reconnects"] >= 1


def test_a_wrong_key_is_a_credential_error(sim_azure):
    sim, azure = sim_azure
    azure.add_device("dev-bad")
    from tether.azure import CredentialError

    async def main():
        c = _client(azure, sim, "dev-bad", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
        with pytest.raises(CredentialError):
            await c.connect()
        assert not c.connected

    asyncio.run(asyncio.wait_for(main(), 30))


def test_firmware_profile_provisions_once_caches_and_reprovisions_when_refused(
    tmp_path, sim_azure
):
    """`"cloud": "azure"` with DPS and a group key: the device key is derived on the device,
    the assignment cached by rename; a reboot connects without DPS; a cached identity the
    hub refuses is provisioned again."""
    from tether.azure import cache
    from tether.azure.profile import make_client

    sim, azure = sim_azure
    group = azure.add_group_enrollment("fleet")
    settings = {
        "cloud": "azure",
        "_dir": str(tmp_path),
        "azure": {
            "id_scope": azure.id_scope,
            "registration_id": "prof-1",
            "group": True,
            "provisioning_host": azure.dps_host,
        },
        "credentials": {"ca": str(sim.ca.cert_pem_path)},
        "_secrets": {"symmetric_key": group.key},
    }

    async def boot(n):
        c = make_client(settings)
        c.session.backoff_min_ms = 50
        c.session.backoff_max_ms = 100
        task = asyncio.create_task(c.run())
        for _ in range(400):
            if c.connected:
                break
            await asyncio.sleep(0.05)
        assert c.connected, c.diagnostics()
        await c.send_message("boot %d" % n)
        c.stop()
        await asyncio.wait_for(task, 5)
        return c

    cpath = str(tmp_path / "azure_assignment.json")
    sys.modules.pop("tether.azure.dps", None)
    asyncio.run(boot(1))
    # DPS's code was loaded for the registration only (a board needs the RAM for the hub).
    assert "tether.azure.dps" not in sys.modules
    doc = cache.load(cpath, azure.id_scope, "prof-1")
    assert doc["device_id"] == "prof-1" and doc["assigned_hub"] == azure.assigned_hub
    assert not (tmp_path / "azure_assignment.json.tmp").exists()
    polls = azure.registration("prof-1")["polls"]
    c2 = asyncio.run(boot(2))
    assert c2.assignment == doc and azure.registration("prof-1")["polls"] == polls  # no DPS
    doc["device_id"] = "ghost"  # an identity the hub does not know: CONNACK 5
    cache.save(cpath, doc)
    c3 = asyncio.run(boot(3))
    assert c3.device_id == "prof-1" and c3.counters is not None
    assert cache.load(cpath, azure.id_scope, "prof-1")["device_id"] == "prof-1"
    bodies = [m["body"] for m in azure.wait_telemetry("prof-1", 3)]
    assert [b if isinstance(b, str) else b.decode() for b in bodies] == [
        "boot 1",
        "boot 2",
        "boot 3",
    ]


def test_sync_client_runs_handlers_on_its_thread(sim_azure):
    """tether.azure.IoTHubDeviceClient (sync, the SDK's threading model): connect, telemetry,
    twin, and a method answered by a plain function calling send_method_response."""
    from tether.azure import IoTHubDeviceClient, MethodResponse

    sim, azure = sim_azure
    dev = azure.add_device("sync-1")
    ca = sim.ca.cert_pem_path.read_text()
    cs = "HostName=%s;DeviceId=sync-1;SharedAccessKey=%s" % (azure.hub_host, dev.key)
    c = IoTHubDeviceClient.create_from_connection_string(cs, server_verification_cert=ca)

    def on_method(req):
        c.send_method_response(MethodResponse.create_from_method_request(req, 201, "hi"))

    c.on_method_request_received = on_method
    c.connect()
    try:
        c.send_message("one")
        assert azure.wait_telemetry("sync-1", 1)[0]["body"] in (b"one", "one")
        assert c.get_twin()["reported"]["$version"] == 1
        sim.registry.wait(
            lambda: "$iothub/methods/POST/#" in sim.device("sync-1", "azure").subscriptions, 5
        )
        assert azure.invoke_method("sync-1", "x", None, timeout_s=5) == (201, "hi")
    finally:
        c.shutdown()


def test_sas_renewed_before_expiry_nothing_lost(sim_azure):
    """sastoken_ttl=6: the base reconnects with a fresh token at 4/5 of it (planned, no
    backoff), before the emulator closes the session at `se`; telemetry sent throughout
    arrives once each, in order."""
    sim, azure = sim_azure
    dev = azure.add_device("renew-1")

    async def main():
        c = _client(azure, sim, "renew-1", dev.key, sastoken_ttl=6)
        await c.connect()
        n = 0
        t0 = time.monotonic()
        while time.monotonic() - t0 < 8:
            await c.send_message("m%d" % n)
            n += 1
            await asyncio.sleep(0.05)
        for _ in range(100):
            if not c._pending():
                break
            await asyncio.sleep(0.05)
        stats = c.stats()
        await c.shutdown()
        return n, stats

    n, stats = asyncio.run(asyncio.wait_for(main(), 30))
    assert stats["renewals"] >= 1 and stats["connect_failures"] == 0, stats
    bodies = [m["body"] for m in azure.wait_telemetry("renew-1", n)]
    bodies = [b.decode() if isinstance(b, bytes) else b for b in bodies]
    assert bodies == ["m%d" % i for i in range(n)]
    assert sim.device("renew-1", "azure").connects == 1 + stats["renewals"]


CONTEXT_SCRIPT = r"""
import ssl, sys
from tether.azure import common
from tether.azure.roots import ROOTS
from tether.azure import CredentialError
pem = [ssl.DER_cert_to_PEM_cert(d) for d in ROOTS]
out = {}
for name, ca in (("pem", pem[0]), ("bundle", pem[0] + pem[1]), ("pem-bytes", pem[1].encode()),
                 ("der", ROOTS[1]), ("default", None)):
    ctx = common.tls_context(ca, None)
    out[name] = (len(ctx.get_ca_certs()), ctx.verify_mode == ssl.CERT_REQUIRED,
                 ctx.check_hostname, ctx.minimum_version == ssl.TLSVersion.TLSv1_2)
try:
    common.tls_context("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", None)
    out["corrupt"] = "accepted"
except CredentialError as exc:
    out["corrupt"] = "CredentialError"
out["heavy"] = sorted(m for m in ("tether.creds", "tether.certs", "tether.der", "tether.tlsctx")
                      if m in sys.modules)
print(repr(out))
"""


def test_cpython_sas_context_is_openssl_alone_and_verifies():
    # CPython, SAS: PEM text (a bundle too), PEM bytes, DER or the embedded roots go to
    # OpenSSL as they are, without tether.creds / certs / der / tlsctx (~0.5 MB of RSS
    # with their import); the context checks the chain and the host name, TLS 1.2+.
    env = dict(os.environ, PYTHONPATH=str(ROOT / "lib"))
    out = subprocess.run(
        [sys.executable, "-c", CONTEXT_SCRIPT], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr
    got = eval(out.stdout)
    ok = (True, True, True)
    assert got["pem"] == (1,) + ok and got["bundle"] == (2,) + ok
    assert got["pem-bytes"] == (1,) + ok and got["der"] == (1,) + ok
    assert got["default"] == (2,) + ok  # DigiCert Global Root G2, Microsoft RSA Root CA 2017
    assert got["corrupt"] == "CredentialError"
    assert got["heavy"] == []
