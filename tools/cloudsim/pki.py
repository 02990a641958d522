"""The emulator's PKI: tools/pki.py's test CA, kept in a directory across runs.

tools.pki.make_pki writes the CA, the server certificate for localhost/127.0.0.1 (and the
deliberately bad certificates fault tests use) on first use; device certificates (CN = the
device id) are issued here on demand with tools.pki.issue_device. Every file exists as PEM
(CPython) and DER (MicroPython). This is a test CA: its key is unencrypted on purpose.
"""

import datetime
import hashlib
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tools import pki as test_pki


class TestCA:
    def __init__(self, directory):
        self.dir = Path(directory)
        if not (self.dir / "ca.crt.pem").exists():
            self.paths = test_pki.make_pki(str(self.dir))
        self.cert = x509.load_pem_x509_certificate((self.dir / "ca.crt.pem").read_bytes())
        self.key = serialization.load_pem_private_key(
            (self.dir / "ca.key.pem").read_bytes(), password=None
        )

    @property
    def cert_pem_path(self):
        return self.dir / "ca.crt.pem"

    @property
    def cert_der_path(self):
        return self.dir / "ca.crt.der"

    def server_files(self, extra_names=()):
        """(cert.pem, key.pem) of the emulator's certificate: for localhost and 127.0.0.1,
        plus extra_names (host names or IP addresses a real board on the LAN will use)."""
        if not extra_names:
            return self.dir / "server.crt.pem", self.dir / "server.key.pem"
        names = ["localhost", "127.0.0.1"] + sorted(set(extra_names))
        stem = "server-" + hashlib.sha256(",".join(names).encode()).hexdigest()[:12]
        cert, key = self.dir / (stem + ".crt.pem"), self.dir / (stem + ".key.pem")
        if not cert.exists():
            self._issue_server(names, cert, key)
        return cert, key

    def _issue_server(self, names, cert_path, key_path):
        alt = []
        for n in names:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                alt.append(x509.DNSName(n))
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
        key_path.chmod(0o600)

    def bad_file(self, name):
        """One of tools.pki's bad files, e.g. bad_file("client_unknown_ca.crt.pem")."""
        return self.dir / name

    def device_files(self, device_id):
        """Issue (once) a client certificate whose CN is the device id; a dict of paths."""
        if "/" in device_id or device_id in ("", ".", ".."):
            raise ValueError("bad device id %r" % device_id)
        ddir = self.dir / "devices" / device_id
        if not (ddir / "device.crt.der").exists():
            ddir.mkdir(parents=True, exist_ok=True)
            test_pki.issue_device(str(ddir), self.key, self.cert, device_id)
        return {
            "cert_pem": ddir / "device.crt.pem",
            "key_pem": ddir / "device.key.pem",
            "cert_der": ddir / "device.crt.der",
            "key_der": ddir / "device.key.der",
            "ca_pem": self.cert_pem_path,
            "ca_der": self.cert_der_path,
        }


def fingerprint(cert_der):
    """SHA-256 of a DER certificate, hex: how the emulator recognises a device certificate."""
    return hashlib.sha256(cert_der).hexdigest()
