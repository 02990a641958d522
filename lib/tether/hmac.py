"""HMAC-SHA256 (RFC 2104) on `hashlib.sha256`, for ports without micropython-lib's `hmac`.

    >>> digest(b"key", b"The quick brown fox jumps over the lazy dog").hex()[:16]
    'f7bc83f430538424'

Only SHA-256: it is what Azure SAS tokens and JWT HS256 need, and every port has it.
MicroPython's hash objects cannot be copied nor updated after digest(), so an HMAC object
computes its digest once and then refuses update(); make a new one per message.
"""

import hashlib

from tether.compat import const

_BLOCK = const(64)  # SHA-256 block size in bytes
digest_size = 32
block_size = 64


def _pads(key):
    # RFC 2104: keys longer than a block are hashed first, then zero-padded to a block.
    if not isinstance(key, (bytes, bytearray, memoryview)):
        raise TypeError("HMAC key must be bytes, not %s" % type(key).__name__)
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    # XOR with 0x36 / 0x5c as one big integer: no Python loop over the 64 bytes.
    k = int.from_bytes(bytes(key) + bytes(_BLOCK - len(key)), "big")
    ipad = (k ^ int.from_bytes(b"\x36" * _BLOCK, "big")).to_bytes(_BLOCK, "big")
    opad = (k ^ int.from_bytes(b"\x5c" * _BLOCK, "big")).to_bytes(_BLOCK, "big")
    return ipad, opad


class HMAC:
    """An HMAC-SHA256 computation: update() any number of times, then digest()."""

    digest_size = 32
    block_size = 64
    name = "hmac-sha256"

    def __init__(self, key, msg=None):
        ipad, self._opad = _pads(key)
        self._inner = hashlib.sha256(ipad)
        self._result = None
        if msg is not None:
            self.update(msg)

    def update(self, msg):
        if self._result is not None:
            raise ValueError("HMAC already finalised by digest()")
        self._inner.update(msg)

    def digest(self):
        if self._result is None:
            outer = hashlib.sha256(self._opad)
            outer.update(self._inner.digest())
            self._result = outer.digest()
        return self._result

    def hexdigest(self):
        return self.digest().hex()


def new(key, msg=None, digestmod=None):
    """Like hmac.new; digestmod may be omitted, "sha256" or hashlib.sha256."""
    if digestmod is not None and digestmod not in ("sha256", hashlib.sha256):
        raise ValueError("only SHA-256 is supported")
    return HMAC(key, msg)


def digest(key, msg, digest="sha256"):
    """HMAC-SHA256 of msg under key, in one call (as hmac.digest(key, msg, "sha256"))."""
    if digest not in ("sha256", hashlib.sha256):
        raise ValueError("only SHA-256 is supported")
    return HMAC(key, msg).digest()


def compare_digest(a, b):
    """Compare two MACs in time that depends on their length only, not where they differ."""
    if len(a) != len(b):
        return False
    diff = 0
    for i in range(len(a)):
        diff |= a[i] ^ b[i]
    return diff == 0
