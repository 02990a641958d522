"""tether.csr on both interpreters: the CSR's structure read back with tether.der, its subject
in the order given, the key's SubjectPublicKeyInfo, and an ECDSA signature that verifies
over the request info (cryptography checks the same in tests/test_csr_differential.py)."""

import hashlib

from harness import raises
from key_vectors import P256_SEC1, P256_SPKI, RSA_PKCS1, RSA_SPKI
from tether import csr, der, keys, p256
from tether.der import DERError

ASTARTE = [("CN", "test/2TBn-jNESuuHamE2Zo1anA"), ("O", "Devices")]


def encoded_children(buf):
    """Each child of the SEQUENCE filling buf as its whole encoding (tag and length too)."""
    t, pos, end = der.read_tlv(buf, 0)
    out = []
    while pos < end:
        nxt = der.read_tlv(buf, pos, end)[2]
        out.append(buf[pos:nxt])
        pos = nxt
    return out


def parts(request):
    items = der.whole(request)
    assert [t for t, s, e in items] == [0x30, 0x30, 0x03]
    return items, encoded_children(request)[0]


def subject_of(info):
    fields = der.whole(info)
    assert fields[0][0] == der.INTEGER and der.read_int(info, fields[0][1], fields[0][2]) == 0
    out = []
    for t, s, e in der.children(info, fields[1][1], fields[1][2]):
        assert t == der.SET
        (atv,) = der.children(info, s, e)
        oid_item, val_item = der.children(info, atv[1], atv[2])
        out.append(
            (der.read_oid(info, oid_item[1], oid_item[2]), val_item[0], der.value(info, val_item))
        )
    return out, encoded_children(info)[2], fields[3]


def test_astarte_subject_is_written_in_order_as_utf8():
    key = keys.load_private_key(P256_SEC1)
    items, info = parts(csr.make(key, ASTARTE))
    subject, spki, attrs = subject_of(info)
    assert subject == [
        ("2.5.4.3", der.UTF8_STRING, b"test/2TBn-jNESuuHamE2Zo1anA"),
        ("2.5.4.10", der.UTF8_STRING, b"Devices"),
    ]
    assert spki == P256_SPKI
    assert attrs[0] == 0xA0 and attrs[1] == attrs[2]  # [0] with no attributes


def test_country_and_serial_number_are_printable_strings():
    key = keys.load_private_key(P256_SEC1)
    items, info = parts(csr.make(key, [("C", "DE"), ("serialNumber", "42"), ("2.5.4.97", "x")]))
    subject, spki, attrs = subject_of(info)
    assert [(o, t) for o, t, v in subject] == [
        ("2.5.4.6", 0x13),
        ("2.5.4.5", 0x13),
        ("2.5.4.97", 0x0C),
    ]


def test_ecdsa_signature_is_der_and_verifies_over_the_info():
    key = keys.load_private_key(P256_SEC1)
    request = csr.make(key, ASTARTE)
    items, info = parts(request)
    alg = der.children(request, items[1][1], items[1][2])
    assert len(alg) == 1 and der.read_oid(request, alg[0][1], alg[0][2]) == "1.2.840.10045.4.3.2"
    bits = der.value(request, items[2])
    assert bits[0] == 0
    r_item, s_item = der.whole(bits[1:])
    r = der.read_int(bits, r_item[1] + 1, r_item[2] + 1)
    s = der.read_int(bits, s_item[1] + 1, s_item[2] + 1)
    point = P256_SPKI[-64:]
    x, y = int.from_bytes(point[:32], "big"), int.from_bytes(point[32:], "big")
    assert p256.verify_digest(x, y, hashlib.sha256(info).digest(), r, s)
    assert csr.make(key, ASTARTE) == request  # RFC 6979: the same request every time


def test_ecdsa_sig_der_handles_high_bits_and_short_values():
    raw = b"\x80" + b"\x00" * 31 + b"\x00" * 31 + b"\x01"
    assert der.whole(csr.ecdsa_sig_der(raw)) == [(0x02, 4, 37), (0x02, 39, 40)]
    raises(DERError, csr.ecdsa_sig_der, b"\x01" * 72)


def test_rsa_signers_make_sha256_with_rsa_requests():
    key = keys.load_private_key(RSA_PKCS1)
    request = csr.make(key, [("CN", "dev")])
    items, info = parts(request)
    subject, spki, attrs = subject_of(info)
    assert spki == RSA_SPKI
    alg = der.children(request, items[1][1], items[1][2])
    assert der.read_oid(request, alg[0][1], alg[0][2]) == "1.2.840.113549.1.1.11"
    assert der.value(request, items[2])[1:] == key.sign(info)


def test_pem_output_is_a_certificate_request_block():
    key = keys.generate_p256()
    pem = csr.make_pem(key, ASTARTE)
    label, body = der.pem_decode(pem)
    assert label == "CERTIFICATE REQUEST"
    items, info = parts(body)
    assert subject_of(info)[1] == key.public_key_der()


def test_unknown_attribute_names_are_refused():
    key = keys.load_private_key(P256_SEC1)
    raises(DERError, csr.make, key, [("Email", "x")])


class OddSigner:
    algorithm = "EdDSA"

    def public_key_der(self):
        return P256_SPKI

    def sign(self, message):
        return b""


def test_a_signer_of_another_algorithm_is_refused():
    raises(DERError, csr.make, OddSigner(), ASTARTE)
