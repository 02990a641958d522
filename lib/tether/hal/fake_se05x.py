"""A fake SE05x for the unix port with the port driver's API and the chip's failure modes.

Objects are binary blobs (certificates) or key objects. A key object signs through a
`signer(digest) -> DER signature`: MicroPython's unix port has no EC arithmetic, so the
signature comes from a real P-256 key held by a helper (`RemoteSigner` talks to
`tools/fake_se_signer.py` over 127.0.0.1; on CPython `LocalSigner` uses `cryptography`).

Like the chip: reading a missing object raises; reading past an object's end is refused
(the card answers an error status word, it does not pad); a key object cannot be read; a
digest that is not SHA-1/224/256/384/512-sized is refused; and `fail_next(n)` makes the
next n commands fail like an I2C bus error (a NACK shows up as OSError EIO).
"""

from tether.compat import const

_EIO = const(5)
_DIGEST_SIZES = (20, 28, 32, 48, 64)


class FakeSE05x:
    def __init__(self, objects=None, keys=None):
        self.objects = dict(objects or {})  # oid -> bytes
        self.keys = dict(keys or {})  # oid -> signer
        self.commands = 0
        self._fail = 0

    def fail_next(self, n=1):
        self._fail = n

    def _command(self):
        self.commands += 1
        if self._fail:
            self._fail -= 1
            raise OSError(_EIO, "SE05x: I2C error")

    def exists(self, oid):
        self._command()
        return oid in self.objects or oid in self.keys

    def read(self, oid, size=0):
        self._command()
        if oid in self.keys:
            raise RuntimeError("SE05x: object 0x%X is a key; its secret cannot be read" % oid)
        if oid not in self.objects:
            raise RuntimeError("Object with id 0x%X doesn't exist." % oid)
        data = self.objects[oid]
        if size == 0:
            return bytes(data)
        if size > len(data):
            raise RuntimeError("SE05x: read of %d bytes past the end of 0x%X" % (size, oid))
        return bytes(data[:size])

    def sign(self, oid, data):
        self._command()
        if oid not in self.keys:
            raise RuntimeError("Object with id 0x%X doesn't exist." % oid)
        if len(data) not in _DIGEST_SIZES:
            raise ValueError("Invalid SHA digest size")
        return self.keys[oid](bytes(data))


class RemoteSigner:
    """Signs through tools/fake_se_signer.py at host:port (one TCP exchange per digest)."""

    def __init__(self, host, port):
        self.host = host
        self.port = port

    def __call__(self, digest):
        import socket

        addr = socket.getaddrinfo(self.host, self.port)[0][-1]
        s = socket.socket()
        try:
            s.connect(addr)
            s.send(bytes([len(digest)]) + digest)
            head = _recv_exact(s, 1)
            if head[0] == 0:
                raise OSError(_EIO, "SE05x signer refused the digest")
            return _recv_exact(s, head[0])
        finally:
            s.close()


def _recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise OSError(_EIO, "SE05x signer closed the connection")
        buf += chunk
    return buf


class LocalSigner:
    """CPython only: signs with a DER private key through `cryptography`."""

    def __init__(self, key_der):
        from cryptography.hazmat.primitives.serialization import load_der_private_key

        self._key = load_der_private_key(key_der, None)

    def __call__(self, digest):
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, utils

        algo = {20: hashes.SHA1(), 28: hashes.SHA224(), 32: hashes.SHA256()}.get(len(digest))
        algo = algo or {48: hashes.SHA384(), 64: hashes.SHA512()}[len(digest)]
        return self._key.sign(digest, ec.ECDSA(utils.Prehashed(algo)))


def from_settings(spec):
    """A FakeSE05x from the settings' "fake": {"se05x": {...}} (hex objects, signer address):
    {"objects": {"0x65": "3082..."}, "keys": {"0x64": "127.0.0.1:40123"}}."""
    from binascii import unhexlify

    objects = {}
    for k, v in spec.get("objects", {}).items():
        objects[int(k, 16)] = unhexlify(v)
    keys = {}
    for k, v in spec.get("keys", {}).items():
        host, port = v.rsplit(":", 1)
        keys[int(k, 16)] = RemoteSigner(host, int(port))
    return FakeSE05x(objects, keys)
