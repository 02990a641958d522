"""A throwaway local PKI for tests and the cloud emulator (EC P-256, `cryptography` package).

Usage from Python::

    from tools.pki import make_pki
    paths = make_pki("/tmp/pki")          # dict of name -> path (str)
    paths["device_cert_der"], paths["device_key_der"]   # what a MicroPython board loads
    paths["ca_pem"], paths["server_cert_pem"], paths["server_key_pem"]  # what mosquitto loads

From the shell: ``python -m tools.pki DIR [--device-id ID ...]`` writes the files and prints
the name -> path table.

Every certificate exists twice: ``*.der`` (MicroPython's `tls` module takes DER bytes) and
``*.pem`` (mosquitto, OpenSSL, CPython's `ssl`). Private keys are SEC1 ("EC PRIVATE KEY"),
the format `openssl ec -outform DER` writes; a PKCS#8 copy of the device key exists too.

The good set: a root CA; a server certificate for ``localhost`` and ``127.0.0.1``; one
device certificate per device id (the certificate's CN is the device id, as Arduino IoT
Cloud does). The bad set, one file per way a connection must be refused:

    other_ca_*                   a second root CA nobody trusts
    server_other_ca_*            server certificate signed by the other CA
    server_wrong_host_*          server certificate for wrong-host.invalid only
    server_expired_*             server certificate whose validity ended yesterday
    server_not_yet_valid_*       server certificate valid from 30 days from now
    client_unknown_ca_*          device certificate signed by the other CA
    device_key_pem_as_der        the device key in PEM, under a .der name
    device_key_corrupt_der       the device key DER with its secret scalar cut short
    device_key_mismatch_der      a valid DER key that is not the device certificate's key

Nothing here is secret: the keys exist only for tests and are regenerated on every call.
Key files are still written owner-only (0600), as real ones must be. The file names are
stable (tools/cloudsim relies on ca.crt.pem, ca.key.pem, server.crt.pem, server.key.pem and
on issue_device() writing device.crt.der / device.key.der / .pem into its directory).
"""

import argparse
import datetime
import ipaddress
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_DEVICE_ID = "3a1c5e1e-7d1b-4c2e-9f00-7e57e7e57001"
SERVER_NAMES = ("localhost", "127.0.0.1")
_DAY = datetime.timedelta(days=1)


def _now():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def _name(cn, org="Tether test PKI"):
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _ca(cn, not_before, not_after):
    key = _key()
    name = _name(cn)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _leaf(ca_key, ca_cert, cn, not_before, not_after, server_names=None, key=None):
    """A leaf certificate: a server one when server_names is given, else a TLS client one."""
    key = key or _key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if server_names:
        alt = []
        for n in server_names:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                alt.append(x509.DNSName(n))
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        usage = ExtendedKeyUsageOID.SERVER_AUTH
    else:
        usage = ExtendedKeyUsageOID.CLIENT_AUTH
    builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def _write(path, data):
    private = ".key." in os.path.basename(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    if private:
        os.chmod(path, 0o600)  # an existing file keeps its mode through O_CREAT
    return path


def _key_der(key):
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _key_pem(key):
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _save(directory, stem, paths, cert=None, key=None):
    """Write cert and/or key as DER and PEM; record them as <stem>_cert_der, ... in paths."""
    if cert is not None:
        p = os.path.join(directory, stem + ".crt")
        paths[stem + "_cert_der"] = _write(
            p + ".der", cert.public_bytes(serialization.Encoding.DER)
        )
        paths[stem + "_cert_pem"] = _write(
            p + ".pem", cert.public_bytes(serialization.Encoding.PEM)
        )
    if key is not None:
        p = os.path.join(directory, stem + ".key")
        paths[stem + "_key_der"] = _write(p + ".der", _key_der(key))
        paths[stem + "_key_pem"] = _write(p + ".pem", _key_pem(key))


def corrupt_key_der(der):
    """A SEC1 key whose private scalar OCTET STRING claims more bytes than the key holds.

    The outer structure still starts like a key (30 ..), so the corruption is found only by
    a parser that checks lengths, which is the case worth testing.
    """
    der = bytearray(der)
    # SEC1: 30 len 02 01 01 04 20 <32 bytes scalar> ... ; find the 04 20 of the scalar.
    i = der.index(b"\x04\x20")
    der[i + 1] = 0x7F
    return bytes(der[: i + 2 + 16])


def issue_device(directory, ca_key, ca_cert, device_id, stem=None, now=None):
    """A device key and certificate (CN = device_id) signed by ca; returns its paths."""
    now = now or _now()
    key, cert = _leaf(ca_key, ca_cert, device_id, now - _DAY, now + 3650 * _DAY)
    paths = {}
    _save(directory, stem or "device", paths, cert, key)
    return paths, key, cert


def make_pki(directory, device_ids=(DEFAULT_DEVICE_ID,)):
    """Write the whole test PKI into directory (created if missing); return name -> path.

    ``device_*`` names are the first device id's files; every id's files are also under
    ``device_<n>_*`` (n = 0, 1, ...) and the ids themselves under ``device_id`` /
    ``device_ids`` (those two values are strings / a list, not paths).
    """
    os.makedirs(directory, exist_ok=True)
    now = _now()
    paths = {}
    ca_key, ca_cert = _ca("Tether Test Root CA", now - _DAY, now + 3650 * _DAY)
    _save(directory, "ca", paths, ca_cert, ca_key)
    other_key, other_cert = _ca("Tether Untrusted CA", now - _DAY, now + 3650 * _DAY)
    _save(directory, "other_ca", paths, other_cert, other_key)

    long = now + 3650 * _DAY
    k, c = _leaf(ca_key, ca_cert, "localhost", now - _DAY, long, SERVER_NAMES)
    _save(directory, "server", paths, c, k)
    k, c = _leaf(other_key, other_cert, "localhost", now - _DAY, long, SERVER_NAMES)
    _save(directory, "server_other_ca", paths, c, k)
    k, c = _leaf(ca_key, ca_cert, "wrong-host.invalid", now - _DAY, long, ("wrong-host.invalid",))
    _save(directory, "server_wrong_host", paths, c, k)
    k, c = _leaf(ca_key, ca_cert, "localhost", now - 60 * _DAY, now - _DAY, SERVER_NAMES)
    _save(directory, "server_expired", paths, c, k)
    k, c = _leaf(ca_key, ca_cert, "localhost", now + 30 * _DAY, now + 60 * _DAY, SERVER_NAMES)
    _save(directory, "server_not_yet_valid", paths, c, k)

    for n, device_id in enumerate(device_ids):
        p, key, cert = issue_device(directory, ca_key, ca_cert, device_id, "device_%d" % n, now)
        paths.update(p)
        if n == 0:
            for name, path in p.items():
                paths["device" + name[len("device_0") :]] = path
            device_key = key
    paths["device_id"] = device_ids[0]
    paths["device_ids"] = list(device_ids)
    paths["device_key_pk8_der"] = _write(
        os.path.join(directory, "device.key.pk8.der"),
        device_key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )

    k, c = _leaf(other_key, other_cert, device_ids[0], now - _DAY, long)
    _save(directory, "client_unknown_ca", paths, c, k)
    paths["device_key_pem_as_der"] = _write(
        os.path.join(directory, "device_pem_as_der.key.der"), _key_pem(device_key)
    )
    paths["device_key_corrupt_der"] = _write(
        os.path.join(directory, "device_corrupt.key.der"), corrupt_key_der(_key_der(device_key))
    )
    paths["device_key_mismatch_der"] = _write(
        os.path.join(directory, "device_mismatch.key.der"), _key_der(_key())
    )
    return paths


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools.pki", description=__doc__.split("\n")[0])
    ap.add_argument("directory")
    ap.add_argument("--device-id", action="append", dest="device_ids")
    args = ap.parse_args(argv)
    paths = make_pki(args.directory, tuple(args.device_ids or (DEFAULT_DEVICE_ID,)))
    for name in sorted(paths):
        print("%-28s %s" % (name, paths[name]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
