"""tether.encoding on both interpreters: RFC 4648 vectors, the strictness of the decoders,
percent-encoding as urllib.parse does it, and hex."""

from harness import raises
from tether import encoding as enc

# RFC 4648 §10.
RFC4648 = [
    (b"", b""),
    (b"f", b"Zg=="),
    (b"fo", b"Zm8="),
    (b"foo", b"Zm9v"),
    (b"foob", b"Zm9vYg=="),
    (b"fooba", b"Zm9vYmE="),
    (b"foobar", b"Zm9vYmFy"),
]


def test_b64encode_matches_rfc4648_and_has_no_newline():
    for raw, text in RFC4648:
        assert enc.b64encode(raw) == text, raw
    long = bytes(range(256))
    assert b"\n" not in enc.b64encode(long)
    assert len(enc.b64encode(long)) == 344


def test_b64decode_reverses_rfc4648_from_str_or_bytes():
    for raw, text in RFC4648:
        assert enc.b64decode(text) == raw
        assert enc.b64decode(text.decode()) == raw


def test_b64decode_refuses_what_validate_true_refuses():
    for bad in (
        "Zg",
        "Zg=",
        "Zm9v=",
        "Zm 9v",
        "Zm9v\n",
        "Zg==Zg==",
        "Z===",
        "Zm9-",
        "Zm9_",
        "@@@@",
    ):
        raises(ValueError, enc.b64decode, bad)


def test_b64url_has_no_padding_and_uses_dash_underscore():
    assert enc.b64url_encode(b"\xfb\xff") == b"-_8"
    assert enc.b64url_encode(b"\xfb\xff\xbf") == b"-_-_"
    assert enc.b64url_encode(b"f") == b"Zg"
    assert enc.b64url_encode(b"") == b""
    # The JWT header every ES256 token starts with.
    assert enc.b64url_encode(b'{"alg":"ES256","typ":"JWT"}') == (
        b"eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9"
    )


def test_b64url_decode_takes_padded_and_unpadded_input():
    assert enc.b64url_decode("-_8") == b"\xfb\xff"
    assert enc.b64url_decode(b"-_8=") == b"\xfb\xff"
    assert enc.b64url_decode("Zg") == b"f"
    assert enc.b64url_decode("") == b""
    for raw in (bytes(range(n)) for n in range(40)):
        assert enc.b64url_decode(enc.b64url_encode(raw)) == raw


def test_b64url_decode_refuses_standard_alphabet_and_bad_lengths():
    for bad in ("+_8", "-/8", "Z", "Zm9vY", "Zg=a", "Z g"):
        raises(ValueError, enc.b64url_decode, bad)


def test_quote_matches_urllib_parse_quote():
    # Expected strings come from CPython's urllib.parse.quote.
    cases = [
        ("a b&c=d/e?f", "/", "a%20b%26c%3Dd/e%3Ff"),
        ("a b&c=d/e?f", "", "a%20b%26c%3Dd%2Fe%3Ff"),
        ("$.ct", "", "%24.ct"),
        ("\u00e9\u20ac\U0001f600", "", "%C3%A9%E2%82%AC%F0%9F%98%80"),
        ("~-._AZaz09", "", "~-._AZaz09"),
        ("a/b:c", "/:", "a/b:c"),
        ("100%", "/", "100%25"),
        ("", "", ""),
    ]
    for text, safe, want in cases:
        assert enc.quote(text, safe=safe) == want, (text, enc.quote(text, safe=safe))
    assert enc.quote("a b") == "a%20b"
    assert enc.quote(b"\x00\xff/") == "%00%FF/"


def test_unquote_matches_urllib_parse_unquote():
    cases = [
        ("%41%4g%2", "A%4g%2"),
        ("%e2%82%AC", "\u20ac"),
        ("abc", "abc"),
        ("%%41", "%A"),
        ("%", "%"),
        ("a+b", "a+b"),
        ("application%2Fjson", "application/json"),
    ]
    for text, want in cases:
        assert enc.unquote(text) == want, text
    assert enc.unquote_to_bytes("%00%ff") == b"\x00\xff"


def test_unquote_refuses_bytes_that_are_not_utf8():
    raises(ValueError, enc.unquote, "%ff")
    raises(ValueError, enc.unquote, "%C3")


def test_quote_and_unquote_round_trip_every_byte():
    raw = bytes(range(256))
    assert enc.unquote_to_bytes(enc.quote(raw, safe="")) == raw


def test_hex_both_ways():
    assert enc.hexlify(b"\x00\x0a\xff") == "000aff"
    assert enc.unhexlify("000AfF") == b"\x00\x0a\xff"
    assert enc.unhexlify(b"") == b""
    for bad in ("0", "zz", "0g"):
        raises(ValueError, enc.unhexlify, bad)
