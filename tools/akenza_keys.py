"""Make an akenza device key pair: the private key for the board, the public half for akenza.

    python -m tools.akenza_keys DEVICE_ID [--alg ES256|RS256] [--cert] [--out DIR]

writes into DIR (default: the current directory), with the file names akenza's own Python
sample reads (ec_* for ES256, rsa_* for RS256):

    ec_private.der    the private key for the board (SEC1 / PKCS#1 DER; copy it to flash)
    ec_private.pem    the same, PKCS#8 PEM, for CPython (PyJWT, tether on a PC)
    ec_public.pem     the public key (SubjectPublicKeyInfo PEM): paste it into akenza
    ec_cert.pem       with --cert: a self-signed certificate, CN = the device id, instead

and prints the `kid` (lowercase hex SHA-256 of the DER SubjectPublicKeyInfo) that tokens
carry in their header. Existing files are never overwritten (--force does). Private keys
are written owner-only (0600). Uses the `cryptography` package (host side only).
"""

import argparse
import datetime
import hashlib
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

ALGORITHMS = {"ES256": "ec", "RS256": "rsa"}
RSA_BITS = 2048


def new_key(algorithm):
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    raise ValueError("algorithm must be ES256 or RS256, not %r" % algorithm)


def kid(public_key):
    """akenza's key id: lowercase hex SHA-256 of the DER SubjectPublicKeyInfo."""
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest()


def self_signed(key, device_id, days=3650):
    """A self-signed certificate for the key, CN = device id (akenza's Java README does
    `openssl req -x509 ... -subj "/CN={deviceId}"`)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id)])
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def _write(path, data, private):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    if private:
        os.chmod(path, 0o600)
    return path


def make_keys(out_dir, device_id, algorithm="ES256", cert=False, force=False, days=3650):
    """Write the files; return {"kid", "algorithm", "private_der", "private_pem",
    "public_pem", "cert_pem" (with cert=True)} (paths as str)."""
    if not device_id or "/" in device_id:
        raise ValueError("bad device id %r" % device_id)
    key = new_key(algorithm)
    stem = os.path.join(out_dir, ALGORITHMS[algorithm])
    os.makedirs(out_dir, exist_ok=True)
    none = serialization.NoEncryption()
    out = {"kid": kid(key.public_key()), "algorithm": algorithm}
    # SEC1 / PKCS#1 for the board: what `openssl ec|rsa -outform DER` writes; tether.keys and
    # the ports' TLS stacks read it.
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL, none
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, none)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    paths = [(stem + "_private.der", der, True, "private_der")]
    paths.append((stem + "_private.pem", pem, True, "private_pem"))
    paths.append((stem + "_public.pem", public, False, "public_pem"))
    if cert:
        crt = self_signed(key, device_id, days).public_bytes(serialization.Encoding.PEM)
        paths.append((stem + "_cert.pem", crt, False, "cert_pem"))
    for path, _, _, _ in paths:  # refuse before writing anything
        if os.path.exists(path) and not force:
            raise FileExistsError("%s exists (use --force to overwrite)" % path)
    for path, data, private, name in paths:
        out[name] = _write(path, data, private)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="python -m tools.akenza_keys", description=__doc__.split("\n")[0]
    )
    ap.add_argument("device_id", help="the akenza device id (the MQTT client id)")
    ap.add_argument("--alg", default="ES256", choices=sorted(ALGORITHMS), help="default ES256")
    ap.add_argument("--cert", action="store_true", help="also a self-signed certificate")
    ap.add_argument("--days", type=int, default=3650, help="certificate validity (3650)")
    ap.add_argument("--out", default=".", help="directory (default: the current one)")
    ap.add_argument("--force", action="store_true", help="overwrite existing files")
    args = ap.parse_args(argv)
    try:
        out = make_keys(args.out, args.device_id, args.alg, args.cert, args.force, args.days)
    except (OSError, ValueError) as exc:
        print("akenza_keys: %s" % exc, file=sys.stderr)
        return 1
    paste = out.get("cert_pem") or out["public_pem"]
    print("board key (copy to flash): %s" % out["private_der"])
    print("CPython key:               %s" % out["private_pem"])
    print("paste into akenza:         %s" % paste)
    print("kid: %s" % out["kid"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
