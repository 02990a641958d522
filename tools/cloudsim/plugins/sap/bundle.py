"""Device certificates as SAP IoT hands them out (protocols.md §4.2), made by the emulator.

SAP's cockpit ("Certificate -> Generate", PEM) and its API
(`.../devices/{id}/authentications/clientCertificate/pem` -> {"secret", "pem"}) give one PEM
text: the device's RSA private key as an encrypted PKCS#8 block (`ENCRYPTED PRIVATE KEY`,
PBEWithSHA1AndDESede in SAP's Java sample, i.e. PKCS#12 PBE pbeWithSHAAnd3-KeyTripleDES-CBC,
OID 1.2.840.113549.1.12.1.3), then the device certificate; the secret is the passphrase.
`cryptography` reads that encryption but cannot write it, so it is written here (RFC 7292
Appendix B key derivation, 3DES-CBC). tests/test_sap_cert.py checks the result with
`cryptography` and the openssl command line.
"""

import datetime
import hashlib
import os
import secrets

from cryptography import x509
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

OID_PBE_SHA1_3DES = "1.2.840.113549.1.12.1.3"  # pbeWithSHAAnd3-KeyTripleDES-CBC
ITERATIONS = 2048
_SHA1_U, _SHA1_V = 20, 64  # output and block size of SHA-1, RFC 7292 B.2 u and v


def _len(n):
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def _tlv(tag, value):
    return bytes([tag]) + _len(len(value)) + value


def _oid(dotted):
    nums = [int(x) for x in dotted.split(".")]
    out = bytearray([40 * nums[0] + nums[1]])
    for n in nums[2:]:
        chunk = [n & 0x7F]
        n >>= 7
        while n:
            chunk.append(0x80 | (n & 0x7F))
            n >>= 7
        out += bytes(reversed(chunk))
    return _tlv(0x06, bytes(out))


def _integer(n):
    return _tlv(0x02, n.to_bytes(n.bit_length() // 8 + 1, "big"))


def pkcs12_kdf(secret, salt, purpose, iterations, size):
    """RFC 7292 Appendix B.2 with SHA-1. purpose: 1 key, 2 IV, 3 MAC key."""
    password = secret.encode("utf-16-be") + b"\0\0"  # a BMPString with its terminator

    def fill(data):
        if not data:
            return b""
        n = _SHA1_V * ((len(data) + _SHA1_V - 1) // _SHA1_V)
        return (data * (n // len(data) + 1))[:n]

    d = bytes([purpose]) * _SHA1_V
    i = bytearray(fill(salt) + fill(password))
    out = b""
    while True:
        a = hashlib.sha1(d + bytes(i)).digest()
        for _ in range(iterations - 1):
            a = hashlib.sha1(a).digest()
        out += a
        if len(out) >= size:
            return out[:size]
        b = int.from_bytes(fill(a), "big") + 1
        for j in range(0, len(i), _SHA1_V):
            block = (int.from_bytes(i[j : j + _SHA1_V], "big") + b) % (1 << (8 * _SHA1_V))
            i[j : j + _SHA1_V] = block.to_bytes(_SHA1_V, "big")


def encrypt_pkcs8(key, secret, iterations=ITERATIONS, salt=None):
    """-> PEM bytes "ENCRYPTED PRIVATE KEY": PKCS#8 under pbeWithSHAAnd3-KeyTripleDES-CBC."""
    salt = salt or os.urandom(8)
    plain = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    k = pkcs12_kdf(secret, salt, 1, iterations, 24)
    iv = pkcs12_kdf(secret, salt, 2, iterations, 8)
    padder = padding.PKCS7(64).padder()
    enc = Cipher(TripleDES(k), modes.CBC(iv)).encryptor()
    data = enc.update(padder.update(plain) + padder.finalize()) + enc.finalize()
    params = _tlv(0x30, _tlv(0x04, salt) + _integer(iterations))
    info = _tlv(0x30, _tlv(0x30, _oid(OID_PBE_SHA1_3DES) + params) + _tlv(0x04, data))
    body = __import__("base64").encodebytes(info).replace(b"\n", b"")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return (
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n"
        + b"\n".join(lines)
        + b"\n-----END ENCRYPTED PRIVATE KEY-----\n"
    )


def new_secret():
    """A passphrase like the one SAP shows once (letters and digits)."""
    return secrets.token_urlsafe(18).replace("-", "x").replace("_", "y")


def issue_certificate(ca_key, ca_cert, alternate_id, not_before=None, not_after=None, key=None):
    """-> (RSA key, certificate) for a device, CN = its alternate id, signed by the CA."""
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, alternate_id)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - datetime.timedelta(days=1))
        .not_valid_after(not_after or now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def make_bundle(key, cert, secret):
    """-> the PEM text SAP gives: the encrypted key, then the certificate."""
    return (encrypt_pkcs8(key, secret) + cert.public_bytes(serialization.Encoding.PEM)).decode()
