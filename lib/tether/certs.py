"""Certificates and keys as bytes: PEM armour decoded, and the checks made before a context.

Just enough X.509, SEC1, PKCS#1 and PKCS#8 to tell a key from a certificate, find the public
key in each and see that they match (the DER reader is tether.der). Every failure is a
CredentialError whose message says what to fix and never holds the key.

    ders = pem_to_der(data, "ca")        # every CERTIFICATE block of a bundle, as DER
    check_pair(cert_der, key_der)        # corrupt, mismatched -> CredentialError
    cert_spki(cert_der)                  # SubjectPublicKeyInfo DER (a Signer's public key)
"""

from tether import der as _der_mod
from tether.errors import CredentialError

KEY_CMD = "openssl ec -in key.pem -outform DER -out key.der"
CERT_CMD = "openssl x509 -in cert.pem -outform DER -out cert.der"

# DER object identifiers (tag + length + value) of the two key algorithms we look into.
_OID_EC = b"\x06\x07\x2a\x86\x48\xce\x3d\x02\x01"  # 1.2.840.10045.2.1 id-ecPublicKey
_OID_RSA = b"\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01"  # 1.2.840.113549.1.1.1

_KEY_LABELS = ("EC PRIVATE KEY", "PRIVATE KEY", "RSA PRIVATE KEY")
_CERT_LABELS = ("CERTIFICATE", "X509 CERTIFICATE")
_WHAT = {"key": "key", "cert": "certificate", "ca": "CA certificate"}

# --- just enough DER to tell a key from a certificate and match them (reader: tether.der) ---

_tlv = _der_mod.read_tlv
_children = _der_mod.children
_whole = _der_mod.whole
_int_bytes = _der_mod.int_bytes


def _sec1_public(buf, items):
    # ECPrivateKey ::= SEQUENCE { version 1, privateKey OCTET STRING, [0] params, [1] pub }
    if len(items) < 2 or items[0][0] != 0x02 or items[1][0] != 0x04 or items[1][2] == items[1][1]:
        raise ValueError("not an EC private key")
    for t, s, e in items[2:]:
        if t == 0xA1:
            bt, bs, be = _tlv(buf, s, e)
            if bt == 0x03 and be > bs:
                return bytes(buf[bs + 1 : be])
    return None  # no public key stored: the pair cannot be checked without EC arithmetic


def _key_public(buf):
    """The public key a DER private key carries (EC point or RSA modulus), or None."""
    items = _whole(buf)
    if len(items) < 2 or items[0][0] != 0x02:
        raise ValueError("no version")
    t = items[1][0]
    if t == 0x04:  # SEC1, what `openssl ec -outform DER` writes
        return _sec1_public(buf, items)
    if t == 0x02:  # PKCS#1 RSAPrivateKey: version, modulus, ...
        return _int_bytes(buf, items[1][1], items[1][2])
    if t == 0x30 and len(items) >= 3 and items[2][0] == 0x04:  # PKCS#8 wrapping one of them
        alg = bytes(buf[items[1][1] : items[1][2]])
        inner = bytes(buf[items[2][1] : items[2][2]])
        if alg.startswith(_OID_EC):
            return _sec1_public(inner, _whole(inner))
        if alg.startswith(_OID_RSA):
            return _key_public(inner)
        return None
    raise ValueError("not a private key")


def _spki(buf):
    """(tag, start, end) of the subjectPublicKeyInfo inside a DER certificate."""
    items = _whole(buf)
    if len(items) != 3 or items[0][0] != 0x30:
        raise ValueError("not a certificate")
    tbs = _children(buf, items[0][1], items[0][2])
    if tbs and tbs[0][0] == 0xA0:  # explicit version
        tbs = tbs[1:]
    # serial, signature alg, issuer, validity, subject, subjectPublicKeyInfo
    if len(tbs) < 6 or tbs[5][0] != 0x30:
        raise ValueError("not a certificate")
    return tbs[5]


def cert_spki(cert_der):
    """The SubjectPublicKeyInfo DER of a certificate (what a Signer's public_key_der gives)."""
    try:
        t, s, e = _spki(cert_der)
    except ValueError:
        raise CredentialError("certificate is not a valid DER certificate (corrupt file?)")
    return _der_mod.tlv(t, bytes(cert_der[s:e]))  # DER lengths are minimal: same bytes


def _cert_public(buf):
    """The public key in a DER certificate, in the form _key_public returns."""
    _, s, e = _spki(buf)
    spki = _children(buf, s, e)
    if len(spki) != 2 or spki[1][0] != 0x03:
        raise ValueError("no public key")
    alg = bytes(buf[spki[0][1] : spki[0][2]])
    bits = buf[spki[1][1] + 1 : spki[1][2]]
    if alg.startswith(_OID_RSA):
        rsa = _whole(bytes(bits))
        return _int_bytes(bits, rsa[0][1], rsa[0][2])
    return bytes(bits)


# --- PEM armour, decoded here so no openssl is needed for an unencrypted key ---


def is_pem(data):
    if isinstance(data, (str, bytes, bytearray, memoryview)):
        return _der_mod.is_pem(data)
    return False


def _plain(text):
    """The blocks of text without its encrypted ones (der.pem_blocks refuses headers)."""
    out = []
    for part in text.split("-----END "):
        at = part.find("-----BEGIN ")
        if at >= 0 and "ENCRYPTED" not in part[at:]:
            label = part[at + 11 :].split("-----", 1)[0]
            out.extend(_der_mod.pem_blocks(part[at:] + "-----END " + label + "-----\n"))
    if not out:
        raise ValueError("has no block but an encrypted one")
    return out


def _plain_name(path):
    return (path[:-4] if path.endswith(".pem") else path) + "-plain.pem"


def conversion_command(path, label, kind):
    """The exact command that turns the PEM file at `path` into DER for this kind."""
    out = path[:-4] + ".der" if path.endswith(".pem") else path + ".der"
    if label == "OPENSSH PRIVATE KEY":  # OpenSSH's own format: ssh-keygen rewrites it
        return "ssh-keygen -p -m PKCS8 -f %s (rewrites it in place as PKCS#8 PEM)" % path
    if kind != "key":
        tool = "openssl x509"
    elif label == "EC PRIVATE KEY":
        tool = "openssl ec"
    else:  # PKCS#8 "PRIVATE KEY" or RSA: pkey writes any key type as DER
        tool = "openssl pkey"
    return "%s -in %s -outform DER -out %s" % (tool, path, out)


def decrypt_command(path):
    """The command that writes an unencrypted copy of the encrypted PEM key at `path`."""
    return "openssl pkey -in %s -out %s" % (path, _plain_name(path))


def pem_to_der(data, kind, name=None):
    """The DER of every block in PEM `data` that fits `kind` ("key", "cert" or "ca").

    name: the file it came from, for messages (None: the command says key.pem / cert.pem).
    An encrypted key, a block this module cannot read, or broken armour raises
    CredentialError; the message names the command to run on the host, never the data.
    """
    what = _WHAT[kind]
    src = name or ("key.pem" if kind == "key" else "cert.pem")
    text = data if isinstance(data, str) else bytes(data).decode("ascii", "replace")
    encrypted = "-----BEGIN ENCRYPTED" in text or "Proc-Type: 4,ENCRYPTED" in text
    if encrypted and kind == "key":  # a certificate next to an encrypted key still loads
        raise CredentialError(
            "%s %s is encrypted; a device cannot ask for its passphrase. Decrypt it on the "
            "host with: %s" % (what, name or "PEM", decrypt_command(src))
        )
    try:
        blocks = _plain(text) if encrypted else _der_mod.pem_blocks(text)
    except ValueError as exc:
        raise CredentialError("%s %s looks like PEM but %s" % (what, name or "data", exc))
    labels = _KEY_LABELS if kind == "key" else _CERT_LABELS
    out = [d for lab, d in blocks if lab in labels]
    for d in out:
        if not d or d[0] != 0x30:  # a2b_base64 skips stray characters: junk decodes short
            raise CredentialError(
                "%s %s: a PEM block holds no DER (corrupt?)" % (what, name or "PEM")
            )
    if not out:
        lab = blocks[0][0]
        raise CredentialError(
            "%s %s is PEM (%s), which Tether cannot read as a %s; convert it with: %s"
            % (what, name or "data", lab, what, conversion_command(src, lab, kind))
        )
    return out


# --- checking what the caller passed ---


def _as_bytes(data, what):
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, str):
        raise CredentialError(
            "%s: expected DER bytes, got a str (a file name?); pass open(path, 'rb').read() "
            "or use tether.creds, which reads files" % what
        )
    raise CredentialError("%s: expected bytes, got %s" % (what, type(data).__name__))


def _der(data, kind):
    """The DER bytes of data: DER as it is, PEM decoded (first fitting block)."""
    if is_pem(data):
        return pem_to_der(data, kind)[0]
    return _as_bytes(data, _WHAT[kind])


def check_ca(der):
    """Raise CredentialError unless der is one DER certificate."""
    try:
        _cert_public(der)
    except ValueError:
        raise CredentialError("CA certificate is not a valid DER certificate (corrupt file?)")


def check_pair(cert_der, key_der):
    """Raise CredentialError unless cert and key parse and belong together."""
    try:
        cert_pub = _cert_public(cert_der)
    except ValueError:
        raise CredentialError("certificate is not a valid DER certificate (corrupt file?)")
    try:
        key_pub = _key_public(key_der)
    except ValueError:
        raise CredentialError("key is corrupt: not a valid DER private key")
    if key_pub is not None and key_pub != cert_pub:
        raise CredentialError("key does not match the certificate (wrong key file?)")


def _key_pem_label(der):
    """The PEM label OpenSSL expects for this DER key layout."""
    items = _whole(der)
    t = items[1][0]
    if t == 0x04:
        return "EC PRIVATE KEY"
    if t == 0x02:
        return "RSA PRIVATE KEY"
    return "PRIVATE KEY"
