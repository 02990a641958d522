"""The purge-properties lists of control/producer/properties and control/consumer/properties
(protocols.md §5.4), with CPython's zlib (never Tether's).

Wire form: a 4-byte size of the uncompressed text, then the zlib stream of the text, the
`{interface}{path}` entries joined by ";". The Astarte spec (and the Rust SDK) write the
size big-endian; the Python SDK writes it little-endian and counts characters. The emulator
sends big-endian and accepts both, and tells which one it saw:

    empty list:  00 00 00 00 78 9c 03 00 00 00 00 01
    "a.B/x":     00 00 00 05 78 9c 4b d4 73 d2 af 00 00 ...
"""

import zlib

MAX_TEXT = 1024 * 1024  # a bigger list is a zlib bomb, not a list of properties


class PurgeError(ValueError):
    pass


def encode(entries):
    text = ";".join(entries).encode("utf-8")
    return len(text).to_bytes(4, "big") + zlib.compress(text)


def decode(payload):
    """-> (entries, header) where header is "big", "little" (the size matched in that byte
    order; "big" when both do), or "mismatch". Raises PurgeError for a broken payload."""
    if len(payload) < 5:
        raise PurgeError("purge list shorter than 5 bytes")
    d = zlib.decompressobj()
    try:
        raw = d.decompress(bytes(payload[4:]), MAX_TEXT + 1)
    except zlib.error as exc:
        raise PurgeError("purge list is not zlib: %s" % exc)
    if len(raw) > MAX_TEXT or d.unconsumed_tail:
        raise PurgeError("purge list inflates past %d bytes" % MAX_TEXT)
    if not d.eof:
        raise PurgeError("purge list zlib stream is truncated")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PurgeError("purge list is not UTF-8")
    head = bytes(payload[:4])
    # Sizes in bytes (the spec) or in characters (what the Python SDK counts).
    sizes = (len(raw), len(text))
    if int.from_bytes(head, "big") in sizes:
        header = "big"
    elif int.from_bytes(head, "little") in sizes:
        header = "little"
    else:
        header = "mismatch"
    return ([e for e in text.split(";") if e] if text else []), header


def split_entry(entry):
    """'com.x.Iface/a/b' -> ('com.x.Iface', '/a/b'); ('com.x.Iface', '') for a bare name."""
    name, sep, rest = entry.partition("/")
    return name, (sep + rest) if sep else ""
