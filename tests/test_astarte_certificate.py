"""tether.astarte's device certificate against the Astarte emulator: a new one (the kept
key and CSR, then verify) when the broker refuses it, when the pairing API hands out expired
ones, before it runs out (a planned reconnect), and what happens when a renewal fails; a key
inside an SE05x; the certificate's dates against `cryptography`. Knobs:
astarte_refuse_certs, astarte_expired_certs, astarte_cert_validity_s,
astarte_refuse_credentials."""

import pytest
from test_astarte_client import INTERPRETERS, _connected, _session, _start
from test_astarte_sdk_fidelity import new_device_id

from tools.cloudsim import CloudSim

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def astarte_sim(tmp_path):
    sim = CloudSim(tmp_path / "cloudsim", clouds=["astarte"], dashboard=False).start()
    try:
        yield sim
    finally:
        sim.stop()


def _key(tmp_path, device_id):
    return (tmp_path / "persistency" / device_id / "crypto" / "device.key").read_bytes()


def _serial_in_use(sim, device_id):
    from cryptography import x509

    return x509.load_der_x509_certificate(_session(sim, device_id).peer_cert).serial_number


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_refused_certificate_is_renewed_with_the_kept_key(astarte_sim, tmp_path, interp):
    """The broker refuses a certificate the pairing API still calls valid (knob
    astarte_refuse_certs): the device re-runs the credentials call with its kept key and
    CSR, verifies the new certificate, and reconnects with it."""
    sim = astarte_sim
    astarte, device_id, client = _start(sim, tmp_path, interp)
    try:
        secret = client.call("register", jwt=astarte.agent_jwt())
        client.call("connect", secret=secret)
        _connected(client)
        dev = astarte.find(device_id, "test")
        key = _key(tmp_path, device_id)
        csr = (tmp_path / "persistency" / device_id / "crypto" / "device.csr").read_bytes()
        first = list(dev.certs)
        mark = client.mark()
        sim.set_knobs(astarte_refuse_certs=True)
        sim.restart_broker()
        client.wait(lambda o: o.get("ev") == "disconnected", 20, mark)
        astarte.wait(lambda: len(dev.certs) >= 2, 30)  # a new one after the refusal
        refused = [e["text"] for e in sim.events(kind="refused")]  # the client id is empty
        assert any("refused (knob)" in t for t in refused), refused
        # the new certificate is verified before it is used (no verify before: first boot)
        astarte.wait(lambda: sim.events(device_id, "verify"), 10)
        assert sim.events(device_id, "verify")[0]["text"] == "valid"
        sim.set_knobs(astarte_refuse_certs=False)
        _connected(client, mark, 30)
        assert _serial_in_use(sim, device_id) == list(dev.certs)[-1] != first[0]
        assert _key(tmp_path, device_id) == key  # the same key, and the same CSR
        assert (tmp_path / "persistency" / device_id / "crypto" / "device.csr").read_bytes() == csr
    finally:
        client.close()


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_expired_certificate_is_renewed(astarte_sim, tmp_path, interp):
    """The pairing API hands out expired certificates (knob astarte_expired_certs): the
    broker's TLS refuses them, verify says EXPIRED, the device keeps asking (with backoff,
    same key) and connects once a valid one comes."""
    sim = astarte_sim
    astarte, device_id, client = _start(sim, tmp_path, interp)
    try:
        secret = client.call("register", jwt=astarte.agent_jwt())
        sim.set_knobs(astarte_expired_certs=True)
        client.call("connect", secret=secret)
        astarte.wait(lambda: astarte.find(device_id, "test") is not None, 10)
        dev = astarte.find(device_id, "test")
        astarte.wait(lambda: len(dev.certs) >= 2, 40)
        assert sim.events(kind="tls-refused", cloud="astarte")  # refused in the handshake
        assert client.call("is_connected") is False
        key = _key(tmp_path, device_id)
        sim.set_knobs(astarte_expired_certs=False)
        _connected(client, 0, 40)
        serial = _serial_in_use(sim, device_id)
        assert serial == list(dev.certs)[-1]
        import datetime

        assert dev.certs[serial] > datetime.datetime.now(datetime.timezone.utc)
        assert _key(tmp_path, device_id) == key
        assert astarte.rejected(device_id) == []
    finally:
        client.close()


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_certificate_about_to_expire_is_renewed_before(astarte_sim, tmp_path, interp):
    """A short-lived certificate: a planned reconnect before it runs out, a new certificate
    then (its last quarter), and no attempt the broker refuses."""
    sim = astarte_sim
    astarte, device_id, client = _start(sim, tmp_path, interp)
    try:
        secret = client.call("register", jwt=astarte.agent_jwt())
        sim.set_knobs(astarte_cert_validity_s=15)
        client.call("connect", secret=secret)
        _connected(client, 0, 15)
        sim.set_knobs(astarte_cert_validity_s=86400)
        dev = astarte.find(device_id, "test")
        assert len(dev.certs) == 1
        mark = client.mark()
        _connected(client, mark, 30)  # the planned reconnect, before the 15 s are over
        assert len(dev.certs) == 2
        assert _serial_in_use(sim, device_id) == list(dev.certs)[-1]
        stats = client.call("stats")
        assert stats["renewals"] == 1 and stats["connect_failures"] == 0, stats
        assert not sim.events(kind="tls-refused", cloud="astarte")
        assert not sim.events(kind="refused")
    finally:
        client.close()


def test_key_inside_an_se05x_signs_the_csr(astarte_sim, tmp_path):
    """key="se05x:token=..." (a fake SE05x here): the CSR is signed by the chip, no key
    file is written, and the certificate the pairing API issues is for the chip's key."""
    import asyncio
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    from tether.astarte import DeviceMqtt, register_device_with_jwt_token
    from tether.astarte.certificate import stage
    from tether.hal import se05x
    from tether.hal.fake_se05x import FakeSE05x, LocalSigner

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "se")])
    now = datetime.datetime.now(datetime.timezone.utc)
    factory = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(1).not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256())
    )  # fmt: skip
    key_der = key.private_bytes(ser.Encoding.DER, ser.PrivateFormat.PKCS8, ser.NoEncryption())
    se = se05x.SecureElement(
        FakeSE05x({0x65: factory.public_bytes(ser.Encoding.DER)}, {0x64: LocalSigner(key_der)})
    )
    astarte = astarte_sim.clouds["astarte"]
    device_id = new_device_id()
    ca = str(astarte_sim.ca.cert_pem_path)
    url = astarte.pairing_url
    secret = register_device_with_jwt_token(device_id, "test", astarte.agent_jwt(), url, ca=ca)
    (tmp_path / "p").mkdir()
    se_kw = {"key": "se05x:token=0x00000064", "key_cert": "se05x:token=0x00000065", "se": se}
    d = DeviceMqtt(device_id, "test", secret, url, tmp_path / "p", ca=ca, **se_kw)
    asyncio.run(stage(d))
    crypto = tmp_path / "p" / device_id / "crypto"
    assert not (crypto / "device.key").exists() and (crypto / "device.csr").exists()
    cert = x509.load_pem_x509_certificate((crypto / "device.crt").read_bytes())
    spki = ser.PublicFormat.SubjectPublicKeyInfo
    assert cert.public_key().public_bytes(ser.Encoding.DER, spki) == key.public_key(
    ).public_bytes(ser.Encoding.DER, spki)  # fmt: skip
    assert len(astarte.find(device_id, "test").certs) == 1
    assert d.server and d.port  # the broker's address from the pairing API


def test_certificate_dates_match_cryptography():
    """tether.astarte.certificate.cert_validity (a few lines of DER, no tether.der) against
    `cryptography`, across UTCTime and GeneralizedTime and leap years."""
    import datetime
    import random

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    from tether.astarte.certificate import cert_validity

    rnd = random.Random(15)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test/x")])
    utc = datetime.timezone.utc
    fixed = [(1970, 1, 1), (2000, 2, 29), (2049, 12, 31), (2050, 1, 1), (2100, 3, 1)]
    days = [datetime.datetime(*d, tzinfo=utc) for d in fixed]
    base = datetime.datetime(1971, 1, 1, tzinfo=utc)
    days += [base + datetime.timedelta(seconds=rnd.randrange(4_000_000_000)) for _ in range(20)]
    for nb in days:
        na = nb + datetime.timedelta(seconds=rnd.randrange(1, 10**9))
        c = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(rnd.randrange(1, 2**64))
            .not_valid_before(nb).not_valid_after(na).sign(key, hashes.SHA256())
        )  # fmt: skip
        got = cert_validity(c.public_bytes(ser.Encoding.PEM))
        assert got == (int(nb.timestamp()), int(na.timestamp())), (nb, na)
    with pytest.raises(ValueError):
        cert_validity(b"-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n")


def test_last_quarter_certificate_connects_when_renewal_fails(astarte_sim, tmp_path):
    """The planned renewal meets a pairing API that refuses credentials (knob
    astarte_refuse_credentials): the certificate still valid is used, the device reconnects,
    and no new reconnect is planned (no storm)."""
    sim = astarte_sim
    astarte, device_id, client = _start(sim, tmp_path, "cpython")
    try:
        secret = client.call("register", jwt=astarte.agent_jwt())
        sim.set_knobs(astarte_cert_validity_s=16)
        client.call("connect", secret=secret)
        _connected(client, 0, 15)
        sim.set_knobs(astarte_refuse_credentials=True)
        mark = client.mark()
        _connected(client, mark, 20)  # the planned reconnect, with the old certificate
        dev = astarte.find(device_id, "test")
        assert len(dev.certs) == 1
        stats = client.call("stats")
        assert stats["renewals"] == 1 and stats["connect_failures"] == 0, stats
        assert client.call("is_connected") is True
    finally:
        client.close()
