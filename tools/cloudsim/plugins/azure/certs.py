"""X.509 device identities as IoT Hub and DPS see them (protocols.md §2.2).

CA-signed: the front's TLS layer verified the chain (the test CA, or a CA added with
front.trust); the identity is the subject CN, which must equal the device (or registration)
id. Self-signed: recognised by thumbprint, SHA-1 or SHA-256 of the DER certificate, upper
hex as the portal shows them; the certificate must also be trusted on the listener
(front.trust) for the handshake to finish.
"""

import datetime
import hashlib
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def to_der(cert):
    """PEM (str/bytes) or DER bytes -> DER bytes."""
    if isinstance(cert, str):
        cert = cert.encode()
    if cert.lstrip()[:5] == b"-----":
        return x509.load_pem_x509_certificate(cert).public_bytes(serialization.Encoding.DER)
    return bytes(cert)


def to_pem(cert):
    der = to_der(cert)
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM).decode()


def thumbprints(cert):
    """{SHA-1, SHA-256} upper-hex thumbprints of a certificate (PEM or DER)."""
    der = to_der(cert)
    return {hashlib.sha1(der).hexdigest().upper(), hashlib.sha256(der).hexdigest().upper()}


def common_name(der):
    """The subject CN of a DER certificate, or None."""
    try:
        cert = x509.load_der_x509_certificate(der)
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except ValueError:
        return None
    return names[0].value if names else None


def issuer_name(der):
    """The issuer Name of a DER certificate, as DER (compared with a CA's subject_name)."""
    return x509.load_der_x509_certificate(der).issuer.public_bytes()


def subject_name(der):
    return x509.load_der_x509_certificate(der).subject.public_bytes()


def is_self_signed(der):
    cert = x509.load_der_x509_certificate(der)
    return cert.issuer == cert.subject


def make_self_signed(directory, device_id, days=365):
    """A P-256 key and a self-signed certificate with CN = device_id, written once under
    directory as PEM (cert.pem, key.pem) and DER (cert.der, key.der); -> dict of paths."""
    d = Path(directory)
    paths = {
        "cert_pem": d / "cert.pem",
        "key_pem": d / "key.pem",
        "cert_der": d / "cert.der",
        "key_der": d / "key.der",
    }
    if paths["cert_der"].exists():
        return paths
    d.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    paths["cert_pem"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["cert_der"].write_bytes(cert.public_bytes(serialization.Encoding.DER))
    for fmt, path in (("PEM", "key_pem"), ("DER", "key_der")):
        paths[path].write_bytes(
            key.private_bytes(
                getattr(serialization.Encoding, fmt),
                serialization.PrivateFormat.PKCS8
                if fmt == "DER"
                else serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
        paths[path].chmod(0o600)
    return paths
