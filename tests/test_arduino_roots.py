"""The root CAs embedded in tether.arduino.roots are the certificates they claim to be."""

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from tether.arduino import roots

UTC = datetime.timezone.utc


def _load(der):
    return x509.load_der_x509_certificate(der)


def _self_signed(cert):
    # Issuer equals subject and the signature verifies with the certificate's own key.
    assert cert.issuer == cert.subject
    cert.verify_directly_issued_by(cert)


def test_arduino_root_is_the_2025_ec_root():
    cert = _load(roots.ARDUINO_ROOT)
    assert cert.subject.rfc4514_string() == "CN=Arduino,OU=IT,O=Arduino LLC US,C=US"
    assert cert.not_valid_before_utc == datetime.datetime(2025, 1, 10, 10, 53, 22, tzinfo=UTC)
    assert cert.not_valid_after_utc == datetime.datetime(2055, 1, 3, 10, 53, 22, tzinfo=UTC)
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    _self_signed(cert)


# Starfield Services G2 has serial number 0, which cryptography warns about; it is the real one.
@pytest.mark.filterwarnings("ignore:Parsed a serial number")
@pytest.mark.parametrize(
    "name, subject_cn, not_after_year",
    [
        ("AMAZON_ROOT_CA1", "Amazon Root CA 1", 2038),
        ("AMAZON_ROOT_CA2", "Amazon Root CA 2", 2040),
        ("AMAZON_ROOT_CA3", "Amazon Root CA 3", 2040),
        ("AMAZON_ROOT_CA4", "Amazon Root CA 4", 2040),
        ("STARFIELD_SERVICES_G2", "Starfield Services Root Certificate Authority - G2", 2037),
    ],
)
def test_public_roots_for_port_8884(name, subject_cn, not_after_year):
    cert = _load(getattr(roots, name))
    cn = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    assert cn == subject_cn
    assert cert.not_valid_after_utc.year == not_after_year
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    _self_signed(cert)


def test_for_port_picks_the_roots_of_each_auth_method():
    assert roots.for_port(8885) == [roots.ARDUINO_ROOT]
    assert roots.for_port(9999, certificate_auth=True) == [roots.ARDUINO_ROOT]
    password_roots = roots.for_port(8884)
    assert len(password_roots) == 5 and roots.ARDUINO_ROOT not in password_roots
    assert roots.for_port(8884, certificate_auth=True) == password_roots
