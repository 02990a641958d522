"""Base64, base64url, URL percent-encoding and hex: the same bytes as CPython's stdlib.

    >>> b64url_encode(b"\\xfb\\xff")          # base64.urlsafe_b64encode(...).rstrip(b"=")
    b'-_8'
    >>> quote("myhub.azure-devices.net/devices/dev 1", safe="")
    'myhub.azure-devices.net%2Fdevices%2Fdev%201'

Encoders return what the stdlib returns (bytes from the base64 ones, str from quote).
Decoders are strict where the stdlib is lenient by default: b64decode and b64url_decode
accept what `base64.b64decode(s, validate=True)` accepts (no spaces, no stray characters,
correct padding; b64url also without padding), except excess `=` after a complete group,
which CPython ignores and RFC 4648 does not allow; anything else raises ValueError.
unquote() raises ValueError when the unquoted bytes are not UTF-8, where CPython would put
U+FFFD (MicroPython has no "replace" error handler).
"""

import binascii

# RFC 3986 unreserved characters: urllib.parse.quote never escapes these.
_UNRESERVED = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~"
_B64_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_HEX_UPPER = "0123456789ABCDEF"


def _as_bytes(s):
    if isinstance(s, str):
        return s.encode("utf-8")
    if isinstance(s, (bytes, bytearray, memoryview)):
        return bytes(s)
    raise TypeError("expected str or bytes, got %s" % type(s).__name__)


# ------------------------------------------------------------------------------ base64


def b64encode(data):
    """Standard base64 with padding, no newline: bytes (as base64.b64encode)."""
    return binascii.b2a_base64(data)[:-1]  # drop the newline both interpreters append


def _b64_strict(s):
    # binascii skips characters outside the alphabet (CPython) or takes '=' anywhere
    # (MicroPython); a key or token with stray characters is a mistake, so refuse it here.
    # Rather than a Python loop over every character, decode, encode again and compare:
    # only the last data character may differ (in the unused low bits), as validate=True
    # allows.
    n = len(s)
    if n % 4:
        raise ValueError("base64 length %d is not a multiple of 4" % n)
    try:
        out = binascii.a2b_base64(s)
    except ValueError:  # binascii.Error is a ValueError
        raise ValueError("malformed base64")
    if n:
        pad = 2 if s[n - 2] == 0x3D else (1 if s[n - 1] == 0x3D else 0)
        k = n - pad - 1  # the last data character
        canon = b64encode(out)
        if canon[:k] != s[:k] or canon[k + 1 :] != s[k + 1 :] or s[k] not in _B64_CHARS:
            raise ValueError("malformed base64")
    return out


def b64decode(s):
    """Strict standard base64 (str or bytes) -> bytes; ValueError if malformed."""
    return _b64_strict(_as_bytes(s))


def b64url_encode(data):
    """base64url (RFC 4648 §5) without padding: bytes, as used by JWT and JWS."""
    out = b64encode(data).replace(b"+", b"-").replace(b"/", b"_")
    end = len(out)
    while end and out[end - 1] == 0x3D:
        end -= 1
    return out[:end]


def b64url_decode(s):
    """base64url with or without padding (str or bytes) -> bytes; ValueError if malformed."""
    s = _as_bytes(s)
    if b"+" in s or b"/" in s:
        raise ValueError("'+' or '/' in base64url input")
    s = s.replace(b"-", b"+").replace(b"_", b"/")
    if len(s) % 4:
        s += b"=" * (4 - len(s) % 4)
    return _b64_strict(s)


# ---------------------------------------------------------------------- percent-encoding


def _unreserved_table():
    t = bytearray(128)
    for c in _UNRESERVED:
        t[c] = 1
    return bytes(t)


_KEEP = _unreserved_table()  # 128 bytes: a lookup instead of a scan per character


def quote(s, safe="/"):
    """Percent-encode like urllib.parse.quote: str is UTF-8 first, returns str.

    Letters, digits and `_.-~` are never escaped; ASCII characters in `safe` are kept too.
    Escapes are upper-case (`%2F`), as in the Azure SDK's SAS tokens.
    """
    data = _as_bytes(s)
    keep = _as_bytes(safe)
    table = _KEEP
    parts = []
    start = 0
    # Runs of safe bytes are copied as one slice, not byte by byte.
    for i in range(len(data)):
        c = data[i]
        if c < 0x80 and (table[c] or c in keep):
            continue
        if start < i:
            parts.append(data[start:i].decode())
        parts.append("%" + _HEX_UPPER[c >> 4] + _HEX_UPPER[c & 15])
        start = i + 1
    if start == 0:
        return data.decode()
    parts.append(data[start:].decode())
    return "".join(parts)


def _hexval(c):
    if 0x30 <= c <= 0x39:
        return c - 0x30
    c |= 0x20  # lower-case
    if 0x61 <= c <= 0x66:
        return c - 0x57
    return -1


def unquote_to_bytes(s):
    """Like urllib.parse.unquote_to_bytes: `%XX` decoded, a bad escape kept as it is."""
    data = _as_bytes(s)
    if b"%" not in data:
        return data
    out = bytearray()
    i = 0
    n = len(data)
    while i < n:
        c = data[i]
        if c == 0x25 and i + 2 < n:
            hi = _hexval(data[i + 1])
            lo = _hexval(data[i + 2])
            if hi >= 0 and lo >= 0:
                out.append(hi << 4 | lo)
                i += 3
                continue
        out.append(c)
        i += 1
    return bytes(out)


def unquote(s):
    """Like urllib.parse.unquote for UTF-8 results -> str; ValueError if not UTF-8."""
    if isinstance(s, str) and "%" not in s:
        return s
    try:
        return unquote_to_bytes(s).decode("utf-8")
    except UnicodeError:
        raise ValueError("percent-decoded bytes are not UTF-8")


# --------------------------------------------------------------------------------- hex


def hexlify(data):
    """Lower-case hex text of data (str, as bytes.hex())."""
    return binascii.hexlify(data).decode()


def unhexlify(s):
    """Hex text (either case, str or bytes) -> bytes; ValueError if malformed."""
    try:
        return binascii.unhexlify(_as_bytes(s))
    except (ValueError, TypeError):  # binascii.Error is a ValueError on CPython
        raise ValueError("malformed hex string")
