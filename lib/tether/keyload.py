"""Loading private keys from DER or PEM (tether.keys.load_private_key / load_der call it).

    key = keyload.load_private_key(data, P256Key)    # tether.keys passes its P256Key class

Layouts read: SEC1 ``EC PRIVATE KEY`` (``openssl ec -outform DER``), PKCS#1 ``RSA PRIVATE
KEY`` and unencrypted PKCS#8 ``PRIVATE KEY`` holding either. Encrypted keys are refused: a
device has nowhere safe to keep the passphrase, so decrypt once on the host instead.
The component tether-keyload (akenza and tether-jwt require it); the EC key class comes from
the caller, so this module does not import tether.keys (which imports it lazily).
"""

from tether import der
from tether.der import DERError
from tether.errors import CredentialError

_OID_EC = "1.2.840.10045.2.1"  # id-ecPublicKey (tether.keys writes these two)
_OID_P256 = "1.2.840.10045.3.1.7"  # prime256v1 / secp256r1
_OID_RSA = "1.2.840.113549.1.1.1"  # rsaEncryption (tether.rsa writes it)
_MAX_RSA_BYTES = 512  # 4096-bit modulus: a bigger one would take minutes to use on a board

_DECRYPT = (
    "the key is encrypted; decrypt it on the host and store it unencrypted: "
    "openssl pkey -in key.pem -out key-plain.pem"
)


def _ints(buf, items):
    return [der.read_int(buf, s, e) for t, s, e in items]


def _sec1(buf, curve_known, ec):
    # ECPrivateKey ::= SEQUENCE { version 1, privateKey OCTET STRING, [0] params, [1] pub }
    items = der.whole(buf)
    if len(items) < 2 or der.read_int(buf, *der.expect(items[0], der.INTEGER)[1:]) != 1:
        raise DERError("not a SEC1 EC private key")
    public = None
    for t, s, e in items[2:]:  # the curve first: a P-384 key should say so, not "corrupt"
        if t == 0xA0:
            ot, os_, oe = der.expect(der.read_tlv(buf, s, e), der.OID)
            curve_known = _check_curve(der.read_oid(buf, os_, oe))
        elif t == 0xA1:
            bt, bs, be = der.expect(der.read_tlv(buf, s, e), der.BIT_STRING)
            if be - bs != 66 or buf[bs] != 0:
                raise DERError("EC public key is not an uncompressed P-256 point")
            public = bytes(buf[bs + 1 : be])
    if not curve_known:
        raise DERError("EC private key names no curve")
    t, s, e = der.expect(items[1], der.OCTET_STRING)
    if not 0 < e - s <= 32:
        raise DERError("EC private key is not 32 bytes")
    d = int.from_bytes(bytes(buf[s:e]), "big")
    return ec(d, public)


def _check_curve(name):
    if name != _OID_P256:
        raise CredentialError("EC key on curve %s; only P-256 (prime256v1) is supported" % name)
    return True


def _pkcs1(buf):
    # RSAPrivateKey ::= SEQUENCE { version 0, n, e, d, p, q, dp, dq, qinv }
    items = der.whole(buf)
    if len(items) != 9:
        raise DERError("not a PKCS#1 RSA private key (multi-prime keys are not supported)")
    for t, s, e in items:
        der.expect((t, s, e), der.INTEGER)
    try:
        from tether.rsa import RSAKey
    except ImportError:  # a board image without the block: say which one
        raise CredentialError("RSA keys: add the tether-rsa component to the image")
    vals = _ints(buf, items)
    if vals[0] != 0:
        raise DERError("PKCS#1 RSA private key version %d not supported" % vals[0])
    if len(der.int_bytes(buf, items[1][1], items[1][2])) > _MAX_RSA_BYTES:
        raise CredentialError("RSA key larger than 4096 bits")
    if min(vals[1:]) <= 0:
        raise DERError("RSA private key is corrupt")
    try:
        return RSAKey(*vals[1:])
    except ValueError as exc:  # tether.rsa's consistency checks (n != p * q, tiny modulus)
        raise CredentialError("RSA key is unusable: %s" % exc)


def _pkcs8(buf, items, ec):
    # PrivateKeyInfo ::= SEQUENCE { version 0|1, AlgorithmIdentifier, privateKey OCTET STRING, ...}
    alg = der.children(buf, *der.expect(items[1], der.SEQUENCE)[1:])
    if not alg:
        raise DERError("PKCS#8 key has no algorithm")
    name = der.read_oid(buf, *der.expect(alg[0], der.OID)[1:])
    inner = der.value(buf, der.expect(items[2], der.OCTET_STRING))
    if name == _OID_EC:
        if len(alg) != 2:
            raise DERError("PKCS#8 EC key names no curve")
        _check_curve(der.read_oid(buf, *der.expect(alg[1], der.OID)[1:]))
        return _sec1(inner, True, ec)
    if name == _OID_RSA:
        return _pkcs1(inner)
    raise CredentialError("unsupported key type %s: use an EC P-256 or an RSA key" % name)


def load_der(buf, ec):
    """A key (ec(d, public) for EC, an RSAKey) from a DER private key (SEC1, PKCS#1 or
    PKCS#8)."""
    try:
        return _load_der(bytes(buf), ec)
    except DERError as exc:
        raise CredentialError("key is corrupt or not a private key: %s" % exc)


def _load_der(buf, ec):
    items = der.whole(buf)
    if len(items) < 2 or items[0][0] != der.INTEGER:
        if len(items) == 2 and items[0][0] == der.SEQUENCE:
            raise CredentialError(_DECRYPT)  # EncryptedPrivateKeyInfo: { algorithm, data }
        raise DERError("not a private key")
    t = items[1][0]
    if t == der.OCTET_STRING:
        return _sec1(buf, False, ec)
    if t == der.INTEGER:
        return _pkcs1(buf)
    if t == der.SEQUENCE and len(items) >= 3:
        return _pkcs8(buf, items, ec)
    raise DERError("not a private key")


def load_private_key(data, ec):
    """A Signer (ec(d, public) or an RSAKey) from a private key as DER bytes or PEM text/bytes.

    Raises tether.errors.CredentialError (a ValueError) saying what to fix: corrupt,
    encrypted, an unsupported curve or key type.
    """
    if not isinstance(data, (bytes, bytearray, memoryview, str)):
        raise CredentialError("key: expected DER bytes or PEM text, got %s" % type(data).__name__)
    if isinstance(data, str) and not der.is_pem(data):
        raise CredentialError(
            "key: expected DER bytes or PEM text, got a str that is not PEM "
            "(a file name? pass open(path, 'rb').read())"
        )
    if isinstance(data, str) or der.is_pem(data):
        try:
            text = data if isinstance(data, str) else bytes(data).decode()
        except (UnicodeError, ValueError):
            raise CredentialError("PEM key is not text")
        if "ENCRYPTED" in text:
            raise CredentialError(_DECRYPT)
        try:
            blocks = der.pem_blocks(text)
        except DERError as exc:
            raise CredentialError("key PEM is corrupt: %s" % exc)
        for label, body in blocks:
            if label.endswith("PRIVATE KEY"):  # skips an "EC PARAMETERS" block before it
                return load_der(body, ec)
        raise CredentialError("no PRIVATE KEY block in the PEM text")
    return load_der(data, ec)
