"""Convert PEM keys and certificates to the DER files MicroPython's TLS needs.

    python -m tools.pem2der key.pem cert.pem        -> key.der, cert.der
    python -m tools.pem2der key.der                 a PEM file under a .der name: in place

The PEM body *is* the DER (base64-encoded), so no crypto library is needed: an
"EC PRIVATE KEY" becomes SEC1 DER (what `openssl ec -outform DER` writes), a "PRIVATE KEY"
PKCS#8 DER, a "CERTIFICATE" X.509 DER. Encrypted keys are refused (the board cannot ask
for a passphrase). Only the first PEM block of each file is converted.
"""

import argparse
import binascii
import sys
from pathlib import Path


class ConversionError(ValueError):
    pass


def pem_to_der(text):
    """(label, der bytes) of the first PEM block in text."""
    lines = text.strip().splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.startswith("-----BEGIN ")), None)
    if start is None:
        raise ConversionError("no PEM block (already DER?)")
    label = lines[start][11:].rstrip("-").strip()
    if "ENCRYPTED" in label or any("Proc-Type: 4,ENCRYPTED" in ln for ln in lines):
        raise ConversionError(
            "encrypted key: decrypt it first (openssl pkey -in KEY -out plain.pem)"
        )
    body = []
    for ln in lines[start + 1 :]:
        if ln.startswith("-----END "):
            break
        body.append(ln.strip())
    else:
        raise ConversionError("PEM block %s has no END line" % label)
    try:
        der = binascii.a2b_base64("".join(body))
    except binascii.Error:
        raise ConversionError("PEM block %s: corrupt base64" % label)
    if not der or der[0] != 0x30:
        raise ConversionError("PEM block %s does not hold DER" % label)
    return label, der


def output_path(path):
    path = Path(path)
    return path.with_suffix(".der") if path.suffix == ".pem" else path


def convert(path, out=None):
    path = Path(path)
    label, der = pem_to_der(path.read_text(errors="replace"))
    out = Path(out) if out else output_path(path)
    out.write_bytes(der)
    return label, out, len(der)


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="python -m tools.pem2der", description=__doc__.split("\n")[0]
    )
    ap.add_argument("files", nargs="+")
    ap.add_argument("-o", "--out", help="output file (one input only)")
    args = ap.parse_args(argv)
    if args.out and len(args.files) != 1:
        ap.error("--out takes one input file")
    rc = 0
    for f in args.files:
        try:
            label, out, n = convert(f, args.out)
            print("%s: %s -> %s (%d bytes DER)" % (f, label, out, n))
        except (OSError, ConversionError) as exc:
            print("%s: %s" % (f, exc), file=sys.stderr)
            rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
