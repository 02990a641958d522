"""PKCS#10 certificate signing requests (RFC 2986) for a device key, DER or PEM.

    key = tether.keys.generate_p256()
    pem = csr.make_pem(key, [("CN", "realm/device-id"), ("O", "Devices")])   # Astarte

The signer is any Signer: a tether.keys P256Key or RSAKey, or a secure element. X.509
wants an ECDSA signature DER-encoded (ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }),
so the Signer's raw R||S is re-encoded here. No attributes or extensions are requested: a CA
such as Astarte's sets what it wants itself.

    30 len                          CertificationRequest
       30 len                       CertificationRequestInfo
          02 01 00                  version 0
          30 len 31 len 30 len ...  subject Name, one RDN per attribute, in the order given
          30 59 ...                 SubjectPublicKeyInfo (91 bytes for P-256)
          a0 00                     attributes: none
       30 0a 06 08 2a8648ce3d040302 ecdsa-with-SHA256
       03 len 00 30 ...             signature
"""

from tether import der
from tether.der import DERError

# Attribute types by the short names OpenSSL prints (RFC 4519); a dotted OID also works.
_NAMES = {
    "CN": "2.5.4.3",
    "C": "2.5.4.6",
    "L": "2.5.4.7",
    "ST": "2.5.4.8",
    "O": "2.5.4.10",
    "OU": "2.5.4.11",
    "serialNumber": "2.5.4.5",
}
# RFC 5280 requires PrintableString for these two; everything else goes out as UTF8String.
_PRINTABLE = ("2.5.4.6", "2.5.4.5")

_OID_ECDSA_SHA256 = "1.2.840.10045.4.3.2"
_OID_RSA_SHA256 = "1.2.840.113549.1.1.11"


def name(subject):
    """An X.509 Name from [(attribute, value), ...], e.g. [("CN", "x"), ("O", "y")]."""
    rdns = []
    for attr, text in subject:
        dotted = _NAMES.get(attr, attr)
        if not dotted[:1].isdigit():
            raise DERError(
                "unknown subject attribute %s (use CN, O, OU, C, ST, L, or an OID)" % attr
            )
        body = der.printable(text) if dotted in _PRINTABLE else der.utf8(text)
        rdns.append(der.set_(der.seq(der.oid(dotted), body)))
    return der.seq(*rdns)


def ecdsa_sig_der(raw):
    """ECDSA-Sig-Value DER from a raw R||S signature (JWS form, 64 bytes for P-256)."""
    half = len(raw) // 2
    if len(raw) != 64:
        raise DERError("ECDSA signature is %d bytes, not 64 (raw R||S)" % len(raw))
    r = int.from_bytes(bytes(raw[:half]), "big")
    s = int.from_bytes(bytes(raw[half:]), "big")
    return der.seq(der.integer(r), der.integer(s))


def make(signer, subject):
    """The DER CertificationRequest for signer's public key and subject, signed by signer."""
    info = der.seq(der.integer(0), name(subject), signer.public_key_der(), der.explicit(0, b""))
    sig = signer.sign(info)
    if signer.algorithm == "ES256":
        alg = der.seq(der.oid(_OID_ECDSA_SHA256))  # no parameters for ECDSA (RFC 5758)
        sig = ecdsa_sig_der(sig)
    elif signer.algorithm == "RS256":
        alg = der.seq(der.oid(_OID_RSA_SHA256), der.null())
    else:
        raise DERError("cannot make a CSR with a %s signer" % signer.algorithm)
    return der.seq(info, alg, der.bitstring(sig))


def make_pem(signer, subject):
    """make() as PEM text ("CERTIFICATE REQUEST"), what a pairing API takes."""
    return der.pem_encode("CERTIFICATE REQUEST", make(signer, subject))
