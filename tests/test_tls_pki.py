"""tools/pki.py: the test PKI has the properties the TLS tests rely on."""

import datetime
import ipaddress
import subprocess
import sys

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from mpy import ROOT

sys.path.insert(0, str(ROOT))
from tools.pki import make_pki  # noqa: E402

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(str(tmp_path_factory.mktemp("pki")), device_ids=("dev-a", "dev-b"))


def cert(pki, stem):
    with open(pki[stem + "_cert_der"], "rb") as f:
        return x509.load_der_x509_certificate(f.read())


def key(path, der=True):
    with open(path, "rb") as f:
        data = f.read()
    load = serialization.load_der_private_key if der else serialization.load_pem_private_key
    return load(data, None)


def pub(k):
    return k.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_server_certificate_names_localhost_and_loopback(pki):
    san = cert(pki, "server").extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.value.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.value.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]


def test_device_certificates_carry_the_device_id_and_match_their_keys(pki):
    assert pki["device_ids"] == ["dev-a", "dev-b"]
    for n, dev in enumerate(("dev-a", "dev-b")):
        c = cert(pki, "device_%d" % n)
        assert c.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == dev
        assert c.issuer == cert(pki, "ca").subject
        assert pub(key(pki["device_%d_key_der" % n])) == pub(c)
    assert pki["device_cert_der"] == pki["device_0_cert_der"]


def test_der_and_pem_hold_the_same_certificate(pki):
    with open(pki["ca_cert_pem"], "rb") as f:
        assert x509.load_pem_x509_certificate(f.read()) == cert(pki, "ca")


def test_the_bad_server_certificates_are_bad_in_one_way_each(pki):
    now = datetime.datetime.now(datetime.timezone.utc)
    ca = cert(pki, "ca").subject
    assert cert(pki, "server_other_ca").issuer == cert(pki, "other_ca").subject != ca
    wrong = cert(pki, "server_wrong_host").extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert "localhost" not in wrong.value.get_values_for_type(x509.DNSName)
    assert cert(pki, "server_expired").not_valid_after_utc < now
    assert cert(pki, "server_not_yet_valid").not_valid_before_utc > now
    for stem in ("server_wrong_host", "server_expired", "server_not_yet_valid"):
        assert cert(pki, stem).issuer == ca
    assert cert(pki, "client_unknown_ca").issuer == cert(pki, "other_ca").subject


def test_the_bad_keys_are_bad(pki):
    with open(pki["device_key_pem_as_der"], "rb") as f:
        assert f.read().startswith(b"-----BEGIN EC PRIVATE KEY-----")
    with pytest.raises(ValueError):
        key(pki["device_key_corrupt_der"])
    assert pub(key(pki["device_key_mismatch_der"])) != pub(cert(pki, "device"))
    assert pub(key(pki["device_key_pk8_der"])) == pub(cert(pki, "device"))


def test_cli_writes_the_files_and_lists_them(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "tools.pki", str(tmp_path), "--device-id", "cli-dev"],
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert "device_cert_der" in out and (tmp_path / "device_0.crt.der").exists()
    c = x509.load_der_x509_certificate((tmp_path / "device_0.crt.der").read_bytes())
    assert c.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "cli-dev"


def test_cpython_loads_the_device_key_without_writing_it_to_a_file(pki, monkeypatch):
    # CPython's ssl reads keys only from a path: on Linux that path is an anonymous memfd,
    # so a kill between write and unlink can never leave the private key on a disk.
    import tempfile

    from tether import tlsctx

    def no_temp_file(*args, **kwargs):
        raise AssertionError("the private key must not go through a temp file")

    monkeypatch.setattr(tempfile, "mkstemp", no_temp_file)
    with open(pki["ca_cert_der"], "rb") as f:
        ca = f.read()
    with open(pki["device_cert_der"], "rb") as f:
        crt = f.read()
    with open(pki["device_key_der"], "rb") as f:
        k = f.read()
    ctx = tlsctx.client_context(cadata=ca, cert=crt, key=k)
    assert ctx.verify_mode == __import__("ssl").CERT_REQUIRED
    with open(pki["device_key_mismatch_der"], "rb") as f:
        wrong = f.read()
    with pytest.raises(tlsctx.CredentialError, match="does not match"):
        tlsctx.client_context(cadata=ca, cert=crt, key=wrong)
