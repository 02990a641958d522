"""Turn the certificate bundle SAP IoT gives a device into files a board and CPython load.

    python -m tools.sap_cert BUNDLE [--secret S | --secret-env VAR] [--out DIR] [--force]

BUNDLE is what SAP's cockpit (device -> Certificate -> Generate, PEM) downloads, or the
JSON its API returns ({"secret": ..., "pem": ...}; the secret is then taken from it). The
PEM holds the device's private key, encrypted with the secret (PKCS#8,
PBEWithSHA1AndDESede), and its certificate. Without --secret/--secret-env the secret is
asked for (not echoed). Writes into DIR (default: the current directory):

    key.der, cert.der     for a board (the key unencrypted: PKCS#1 DER for RSA)
    key.pem, cert.pem     for CPython (`ssl` / paho: certfile=cert.pem, keyfile=key.pem)
    device.pem            key and certificate in one file (paho's `certfile=` alone)

This replaces the three `openssl` commands SAP's material describes. Private keys are
written owner-only (0600); existing files are kept unless --force. A wrong secret, a
bundle without a key or without a certificate, and a key that is not the certificate's each
stop with a message saying so. Uses the `cryptography` package (host side only).
"""

import argparse
import datetime
import getpass
import json
import os
import re
import sys

from cryptography import x509
from cryptography.hazmat.primitives import serialization

_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.S)
_KEY_LABELS = (b"ENCRYPTED PRIVATE KEY", b"PRIVATE KEY", b"RSA PRIVATE KEY", b"EC PRIVATE KEY")


class SapCertError(Exception):
    """A bundle that cannot be turned into device files; the message says why."""


class Converted:
    """The unlocked key and the device certificate (cryptography objects), plus any other
    certificates the bundle held, and whether the key was encrypted."""

    def __init__(self, key, cert, others, was_encrypted):
        self.key = key
        self.cert = cert
        self.others = others
        self.was_encrypted = was_encrypted

    def files(self):
        """-> {file name: bytes} of everything written."""
        none = serialization.NoEncryption()
        der = serialization.Encoding.DER
        pem = serialization.Encoding.PEM
        key_pem = self.key.private_bytes(pem, serialization.PrivateFormat.PKCS8, none)
        cert_pem = self.cert.public_bytes(pem)
        return {
            "key.der": self.key.private_bytes(
                der, serialization.PrivateFormat.TraditionalOpenSSL, none
            ),
            "cert.der": self.cert.public_bytes(der),
            "key.pem": key_pem,
            "cert.pem": cert_pem,
            "device.pem": key_pem + cert_pem,
        }


def read_bundle(data):
    """-> (PEM bytes, secret or None): the API's JSON gives both, a PEM file only the PEM."""
    if isinstance(data, str):
        data = data.encode()
    stripped = data.lstrip()
    if stripped[:1] == b"{":
        try:
            obj = json.loads(stripped)
        except ValueError as exc:
            raise SapCertError("the bundle looks like JSON but is not: %s" % exc) from None
        if not isinstance(obj, dict) or not isinstance(obj.get("pem"), str):
            raise SapCertError('the JSON has no "pem" field (want {"secret": ..., "pem": ...})')
        secret = obj.get("secret")
        return obj["pem"].encode(), secret if isinstance(secret, str) else None
    return data, None


def convert(bundle, secret=None):
    """bundle: the PEM (bytes/str) or the API's JSON. -> Converted, or raise SapCertError."""
    pem, json_secret = read_bundle(bundle)
    secret = secret if secret is not None else json_secret
    blocks = [(m.group(1), m.group(0)) for m in _BLOCK.finditer(pem)]
    if not blocks:
        if pem[:1] == b"\x30":
            raise SapCertError(
                "the bundle is binary (a .p12/PKCS#12 download?): download the PEM instead"
            )
        raise SapCertError("the bundle holds no PEM block (-----BEGIN ...-----)")
    keys = [b for label, b in blocks if label in _KEY_LABELS]
    certs = [b for label, b in blocks if label == b"CERTIFICATE"]
    if not keys:
        raise SapCertError(
            "the bundle has no private key (no -----BEGIN ENCRYPTED PRIVATE KEY----- block): "
            "SAP's PEM download holds the key and the certificate; a certificate alone "
            "cannot log in"
        )
    if len(keys) > 1:
        raise SapCertError("the bundle has %d private keys; expected one" % len(keys))
    if not certs:
        raise SapCertError("the bundle has a private key but no -----BEGIN CERTIFICATE-----")
    key, encrypted = _unlock(keys[0], secret)
    try:
        loaded = [x509.load_pem_x509_certificate(c) for c in certs]
    except ValueError as exc:
        raise SapCertError("a certificate in the bundle is damaged: %s" % exc) from None
    mine = _public(key.public_key())
    match = [c for c in loaded if _public(c.public_key()) == mine]
    if not match:
        names = ", ".join(c.subject.rfc4514_string() or "(no subject)" for c in loaded)
        raise SapCertError(
            "the private key does not match the certificate (%s): were they taken from two "
            "different downloads?" % names
        )
    others = [c for c in loaded if c is not match[0]]
    return Converted(key, match[0], others, encrypted)


def _public(key):
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _unlock(block, secret):
    encrypted = block.startswith(b"-----BEGIN ENCRYPTED") or b"Proc-Type: 4,ENCRYPTED" in block
    if encrypted and not secret:
        raise SapCertError(
            "the private key is encrypted: give the secret SAP showed when the certificate "
            "was generated (--secret, or --secret-env VAR)"
        )
    try:
        key = serialization.load_pem_private_key(block, secret.encode() if encrypted else None)
    except ValueError as exc:
        if encrypted and "password" in str(exc).lower():
            raise SapCertError(
                "the secret does not unlock the private key: it must be the one shown with "
                "this download (a new certificate comes with a new secret)"
            ) from None
        raise SapCertError("the private key cannot be read: %s" % exc) from None
    except TypeError as exc:  # an unencrypted key given a secret, or the reverse
        raise SapCertError("the private key cannot be read: %s" % exc) from None
    return key, encrypted


def write(converted, out_dir, force=False):
    """Write converted.files() into out_dir; -> {name: path}. Nothing is written when one
    file exists (unless force)."""
    os.makedirs(out_dir, exist_ok=True)
    files = converted.files()
    paths = {name: os.path.join(out_dir, name) for name in files}
    existing = [p for p in paths.values() if os.path.exists(p)]
    if existing and not force:
        raise SapCertError("%s exists (use --force to overwrite)" % ", ".join(existing))
    for name, data in files.items():
        private = name.startswith(("key.", "device."))
        fd = os.open(
            paths[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644
        )
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        if private:
            os.chmod(paths[name], 0o600)
    return paths


def _describe(converted):
    cert = converted.cert
    not_after = cert.not_valid_after_utc
    lines = [
        "certificate: %s" % cert.subject.rfc4514_string(),
        "issuer:      %s" % cert.issuer.rfc4514_string(),
        "valid until: %s" % not_after.strftime("%Y-%m-%d %H:%M UTC"),
    ]
    if not_after < datetime.datetime.now(datetime.timezone.utc):
        lines.append("WARNING: this certificate has expired; SAP will refuse it")
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="python -m tools.sap_cert", description=__doc__.split("\n")[0]
    )
    ap.add_argument("bundle", help="the PEM SAP gave (or the API's JSON answer)")
    ap.add_argument("--secret", help="the certificate secret (visible in ps: prefer the prompt)")
    ap.add_argument("--secret-env", metavar="VAR", help="read the secret from this variable")
    ap.add_argument("--out", default=".", help="directory (default: the current one)")
    ap.add_argument("--force", action="store_true", help="overwrite existing files")
    args = ap.parse_args(argv)
    try:
        with open(args.bundle, "rb") as f:
            data = f.read()
        secret = args.secret
        if args.secret_env:
            secret = os.environ.get(args.secret_env)
            if secret is None:
                raise SapCertError("%s is not set" % args.secret_env)
        pem, json_secret = read_bundle(data)
        if secret is None and json_secret is None and b"ENCRYPTED" in pem and sys.stdin.isatty():
            secret = getpass.getpass("certificate secret: ")
        converted = convert(data, secret)
        paths = write(converted, args.out, args.force)
    except (OSError, SapCertError) as exc:
        print("sap_cert: %s" % exc, file=sys.stderr)
        return 1
    for line in _describe(converted):
        print(line)
    for name in sorted(paths):
        print("wrote %s" % paths[name])
    return 0


if __name__ == "__main__":
    sys.exit(main())
