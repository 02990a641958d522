"""tether.der on both interpreters: byte-exact writer vectors, the reader, PEM armour, and a
corpus of malformed input (truncated, lengths past the end, indefinite length, wrong tags,
random mutations) that must raise DERError and nothing else."""

import binascii

from harness import Rng, raises
from key_vectors import P256_SEC1, P256_SPKI
from tether import der
from tether.der import DERError


def h(text):
    return binascii.unhexlify(text.replace(" ", ""))


def hx(data):
    return binascii.hexlify(data).decode()


# ---------------------------------------------------------------- writer


def test_integers_are_minimal_with_a_sign_byte_when_the_top_bit_is_set():
    cases = [
        (0, "020100"),
        (1, "020101"),
        (127, "02017f"),
        (128, "02020080"),
        (255, "020200ff"),
        (256, "02020100"),
        (0x7FFF, "02027fff"),
        (0x8000, "0203008000"),
        (2**64, "0209010000000000000000"),
    ]
    for n, want in cases:
        assert hx(der.integer(n)) == want, (n, hx(der.integer(n)))
    raises(DERError, der.integer, -1)


def test_lengths_switch_to_long_form_at_128():
    for n, head in [(0, "0400"), (127, "047f"), (128, "048180"), (255, "0481ff")]:
        assert hx(der.octets(b"\0" * n)[:3]).startswith(head), n
    assert hx(der.octets(b"\0" * 256)[:4]) == "04820100"
    assert hx(der.octets(b"\0" * 65536)[:5]) == "0483010000"


def test_object_identifiers_encode_as_x690_says():
    cases = [
        ("1.2.840.10045.2.1", "06072a8648ce3d0201"),
        ("1.2.840.10045.3.1.7", "06082a8648ce3d030107"),
        ("1.2.840.113549.1.1.11", "06092a864886f70d01010b"),
        ("2.5.4.3", "0603550403"),
        ("2.999.3", "0603883703"),
        ("0.0", "060100"),
    ]
    for dotted, want in cases:
        enc = der.oid(dotted)
        assert hx(enc) == want, (dotted, hx(enc))
        t, s, e = der.read_tlv(enc, 0)
        assert t == der.OID and der.read_oid(enc, s, e) == dotted
    for bad in ("1", "3.1", "1.40", "0.45.1"):
        raises(DERError, der.oid, bad)


def test_strings_bitstrings_sets_and_explicit_tags():
    assert hx(der.utf8("é")) == "0c02c3a9"
    assert hx(der.printable("DE")) == "13024445"
    assert hx(der.bitstring(b"\x04\x01")) == "0303000401"
    assert hx(der.bitstring(b"\xf0", 4)) == "030204f0"
    assert hx(der.null()) == "0500"
    assert hx(der.set_(der.integer(1))) == "3103020101"
    assert hx(der.explicit(0, der.integer(1))) == "a003020101"
    assert hx(der.explicit(0, b"")) == "a000"
    assert hx(der.seq(der.integer(1), der.octets(b"*"))) == "300602010104012a"


def test_a_sec1_key_rebuilt_by_the_writer_is_byte_identical():
    d = P256_SEC1[7:39]
    point = P256_SPKI[-65:]
    built = der.seq(
        der.integer(1),
        der.octets(d),
        der.explicit(0, der.oid("1.2.840.10045.3.1.7")),
        der.explicit(1, der.bitstring(point)),
    )
    assert built == P256_SEC1


# ---------------------------------------------------------------- reader


def test_reader_walks_a_key_without_copying():
    items = der.whole(P256_SEC1)
    assert [t for t, s, e in items] == [0x02, 0x04, 0xA0, 0xA1]
    assert der.read_int(P256_SEC1, items[0][1], items[0][2]) == 1
    assert der.value(P256_SEC1, items[1]) == P256_SEC1[7:39]
    t, s, e = der.read_tlv(P256_SEC1, items[2][1], items[2][2])
    assert der.read_oid(P256_SEC1, s, e) == "1.2.840.10045.3.1.7"
    mv = memoryview(P256_SEC1)
    assert der.whole(mv) == items


def test_long_form_lengths_are_read():
    body = b"\x01" * 300
    enc = der.octets(body)
    t, s, e = der.read_tlv(enc, 0)
    assert (t, s, e) == (0x04, 4, 304)
    assert der.read_tlv(h("04 84 00 00 00 01 2a"), 0) == (0x04, 6, 7)


def test_int_helpers_strip_zeros_and_refuse_negatives():
    enc = der.integer(0x80FF)
    t, s, e = der.read_tlv(enc, 0)
    assert der.int_bytes(enc, s, e) == b"\x80\xff"
    assert der.read_int(enc, s, e) == 0x80FF
    raises(DERError, der.read_int, h("0201ff"), 2, 3)
    raises(DERError, der.read_int, h("0200"), 2, 2)


def test_expect_names_both_tags():
    exc = raises(DERError, der.expect, (0x04, 0, 0), 0x02)
    assert "0x02" in str(exc) and "0x04" in str(exc)


# ---------------------------------------------------------------- PEM


def test_pem_round_trips_in_64_column_lines():
    data = bytes(range(256)) * 2
    text = der.pem_encode("CERTIFICATE REQUEST", data)
    lines = text.split("\n")
    assert lines[0] == "-----BEGIN CERTIFICATE REQUEST-----"
    assert lines[-2] == "-----END CERTIFICATE REQUEST-----" and lines[-1] == ""
    assert max(len(x) for x in lines[1:-2]) == 64
    assert der.pem_decode(text) == ("CERTIFICATE REQUEST", data)
    assert der.pem_decode(text.encode()) == ("CERTIFICATE REQUEST", data)
    assert der.pem_decode(text.replace("\n", "\r\n")) == ("CERTIFICATE REQUEST", data)


def test_pem_blocks_returns_every_block_and_skips_text_between():
    text = (
        "Bag Attributes\n    localKeyID: 01\n"
        + der.pem_encode("EC PARAMETERS", b"\x06\x01\x00")
        + "junk\n"
        + der.pem_encode("EC PRIVATE KEY", P256_SEC1)
    )
    blocks = der.pem_blocks(text)
    assert blocks == [("EC PARAMETERS", b"\x06\x01\x00"), ("EC PRIVATE KEY", P256_SEC1)]
    assert der.pem_decode(text, "EC PRIVATE KEY") == ("EC PRIVATE KEY", P256_SEC1)
    raises(DERError, der.pem_decode, text, "CERTIFICATE")


def test_is_pem_tells_text_from_der():
    pem = der.pem_encode("EC PRIVATE KEY", P256_SEC1)
    assert der.is_pem(pem) and der.is_pem(pem.encode()) and der.is_pem(bytearray(pem.encode()))
    assert not der.is_pem(P256_SEC1)
    assert not der.is_pem(b"") and not der.is_pem("")


def test_bad_pem_raises_der_error():
    good = der.pem_encode("X", b"abcdef")
    cases = [
        "",
        "no pem here",
        good.replace("-----END X-----", ""),
        good.replace("-----END X-----", "-----END Y-----"),
        good.replace("YWJj", "Y!Jj"),
        good.replace("YWJj", "YWJ"),
        "-----BEGIN X-----\nProc-Type: 4,ENCRYPTED\nYWJj\n-----END X-----\n",
        b"\xff\xfe-----BEGIN X-----",
    ]
    for case in cases:
        raises(DERError, der.pem_blocks, case)


# ---------------------------------------------------------------- malformed input


def walk(buf, start, end, depth=0):
    """Read everything: constructed items recursively, INTEGERs and OIDs decoded."""
    if depth > 16:
        return
    for t, s, e in der.children(buf, start, end):
        if t & 0x20:
            walk(buf, s, e, depth + 1)
        elif t == der.INTEGER and e > s and not buf[s] & 0x80:
            der.read_int(buf, s, e)
        elif t == der.OID:
            der.read_oid(buf, s, e)


def only_der_error(buf):
    try:
        walk(buf, 0, len(buf))
        der.whole(buf)
    except DERError:
        return False
    return True


def test_malformed_corpus_raises_only_der_error():
    corpus = [
        "",
        "30",
        "3003 0201",  # truncated child
        "3080 0201 01 0000",  # indefinite length
        "3085 0000000001 00",  # 5 length bytes
        "3084 ffffffff 00",  # 4 GB length in a 7-byte buffer
        "3081",  # long form, no length byte
        "3082 01",  # long form, one of two length bytes
        "1f 01 00",  # multi-byte tag
        "0203 0001",  # integer shorter than its length
        "0600",  # empty OID
        "0601 80",  # OID ending mid sub-identifier
        "0602 8001",  # non-minimal OID sub-identifier
        "3005 3003 0201",  # nested overrun
        "0201 01 00",  # trailing byte after the one item
        "0401 00",  # not a SEQUENCE
    ]
    for text in corpus:
        buf = h(text)
        assert not only_der_error(buf), text
    for bad in (h("0600"), h("0601 80"), h("0602 8001")):
        raises(DERError, der.read_oid, bad, 2, len(bad))


def test_truncations_of_a_valid_key_all_raise_der_error():
    for n in range(len(P256_SEC1)):
        raises(DERError, der.whole, P256_SEC1[:n])


def test_random_mutations_raise_der_error_or_parse():
    rng = Rng(0xDE5)
    base = bytearray(P256_SEC1)
    for _ in range(400):
        buf = bytearray(base)
        for _ in range(1 + rng.below(4)):
            buf[rng.below(len(buf))] = rng.below(256)
        only_der_error(bytes(buf))  # anything but DERError escapes and fails the test
    for _ in range(100):
        only_der_error(rng.bytes(rng.below(40)))
