"""SSL contexts that verify the server, for MicroPython's `tls` and CPython's `ssl`.

``client_context(cadata, cert, key)`` returns something `asyncio.open_connection(ssl=...)`
accepts on either interpreter. It exists because the defaults are traps: on MicroPython the
`ssl` wrapper's SSLContext does not verify and `open_connection(ssl=True)` verifies nothing.
Here the server's certificate and host name are always checked unless the caller passes
``insecure=True``, and such a context logs a warning every time it wraps a connection.

Credentials are DER bytes (what MicroPython's mbedTLS binding takes). CPython also takes
PEM. Everything is checked before the first connection, so a wrong file fails here with a
message that says what to do instead of as an alert in the middle of a handshake.
"""

from tether import log
from tether.compat import MICROPYTHON

_log = log.getLogger("tls")

KEY_CMD = "openssl ec -in key.pem -outform DER -out key.der"
CERT_CMD = "openssl x509 -in cert.pem -outform DER -out cert.der"

# DER object identifiers (tag + length + value) of the two key algorithms we look into.
_OID_EC = b"\x06\x07\x2a\x86\x48\xce\x3d\x02\x01"  # 1.2.840.10045.2.1 id-ecPublicKey
_OID_RSA = b"\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01"  # 1.2.840.113549.1.1.1


class CredentialError(ValueError):
    """A certificate or key that cannot work; the message says what to fix."""


# --- a bounded DER reader: just enough to tell a key from a certificate and match them ---


def _tlv(buf, pos, end):
    """(tag, value_start, value_end) of the item at pos; ValueError if it overruns end."""
    if pos + 2 > end:
        raise ValueError("truncated")
    tag = buf[pos]
    n = buf[pos + 1]
    pos += 2
    if n & 0x80:
        k = n & 0x7F
        if k == 0 or k > 3 or pos + k > end:
            raise ValueError("bad length")
        n = 0
        for i in range(k):
            n = (n << 8) | buf[pos + i]
        pos += k
    if pos + n > end:
        raise ValueError("length past end")
    return tag, pos, pos + n


def _children(buf, start, end):
    """List of (tag, value_start, value_end) inside a constructed item."""
    out = []
    while start < end:
        t, s, e = _tlv(buf, start, end)
        out.append((t, s, e))
        start = e
    return out


def _whole(buf):
    """The children of the one SEQUENCE that must fill buf exactly."""
    t, s, e = _tlv(buf, 0, len(buf))
    if t != 0x30 or e != len(buf):
        raise ValueError("not one DER SEQUENCE")
    return _children(buf, s, e)


def _int_bytes(buf, s, e):
    while s < e - 1 and buf[s] == 0:
        s += 1
    return bytes(buf[s:e])


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


def _cert_public(buf):
    """The public key in a DER certificate, in the form _key_public returns."""
    items = _whole(buf)
    if len(items) != 3 or items[0][0] != 0x30:
        raise ValueError("not a certificate")
    tbs = _children(buf, items[0][1], items[0][2])
    if tbs and tbs[0][0] == 0xA0:  # explicit version
        tbs = tbs[1:]
    # serial, signature alg, issuer, validity, subject, subjectPublicKeyInfo
    if len(tbs) < 6 or tbs[5][0] != 0x30:
        raise ValueError("not a certificate")
    spki = _children(buf, tbs[5][1], tbs[5][2])
    if len(spki) != 2 or spki[1][0] != 0x03:
        raise ValueError("no public key")
    alg = bytes(buf[spki[0][1] : spki[0][2]])
    bits = buf[spki[1][1] + 1 : spki[1][2]]
    if alg.startswith(_OID_RSA):
        rsa = _whole(bytes(bits))
        return _int_bytes(bits, rsa[0][1], rsa[0][2])
    return bytes(bits)


# --- checking what the caller passed ---


def _is_pem(data):
    if isinstance(data, str):
        return "-----BEGIN" in data[:64]
    return b"-----BEGIN" in bytes(data[:64])


def _as_bytes(data, what):
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, str) and not _is_pem(data):
        raise CredentialError(
            "%s: expected DER bytes, got a str (a file name?); pass open(path, 'rb').read()" % what
        )
    raise CredentialError("%s: expected bytes, got %s" % (what, type(data).__name__))


def _pem_text(data):
    return data if isinstance(data, str) else bytes(data).decode("ascii", "replace")


def pem_blocks(data, what="PEM data"):
    """The DER bytes of every PEM block in data (a CA bundle holds several). CPython only."""
    from binascii import a2b_base64

    text = _pem_text(data)
    if "ENCRYPTED" in text:
        raise CredentialError("%s is encrypted; store it unencrypted (%s)" % (what, KEY_CMD))
    out = []
    body = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("-----BEGIN"):
            body = []
        elif line.startswith("-----END"):
            if body is not None:
                try:
                    out.append(a2b_base64("".join(body)))
                except ValueError:
                    raise CredentialError("%s looks like PEM but its base64 is corrupt" % what)
            body = None
        elif body is not None:
            body.append(line)
    if not out:
        raise CredentialError("%s looks like PEM but has no complete block" % what)
    return out


def _der(data, what, cmd):
    """DER bytes from data; PEM is converted on CPython and refused on MicroPython."""
    if _is_pem(data):
        if MICROPYTHON:
            if "RSA PRIVATE KEY" in _pem_text(data[:64]):
                cmd = "openssl pkey -in key.pem -outform DER -out key.der"
            raise CredentialError(
                "%s is PEM but this port needs DER; convert it with: %s" % (what, cmd)
            )
        return pem_blocks(data, what)[0]
    return _as_bytes(data, what)


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


# --- the contexts ---


def _warn(server_hostname):
    _log.warning(
        "TLS server verification is OFF (insecure=True): anyone between here and %s can "
        "impersonate the broker",
        server_hostname or "the broker",
    )


def is_insecure(ctx):
    """True for a context made with insecure=True (it warns on every connection)."""
    return bool(getattr(ctx, "tether_insecure", False))


def warn_if_insecure(ctx, server_hostname=None):
    """Log the insecure warning now if ctx does not verify; returns is_insecure(ctx).

    Contexts from client_context() already warn each time they wrap a connection; this is
    for callers that hold a context made elsewhere and want the same warning.
    """
    if is_insecure(ctx) or (ctx is True):
        _warn(server_hostname)
        return True
    return False


def _ca_list(cadata):
    if cadata is None:
        return []
    if isinstance(cadata, (list, tuple)):
        return list(cadata)
    return [cadata]


def client_context(cadata=None, cert=None, key=None, insecure=False):
    """An SSL context for asyncio.open_connection(ssl=...), on MicroPython or CPython.

    cadata: DER bytes of the root CA, or a list of them (each is trusted).
    cert, key: the device's DER certificate and private key, for mutual TLS; both or none.
        On CPython either may also be PEM, and key may be a ``pkcs11:`` URI (tether.hsm).
    insecure: skip server verification. Never for production; warns at every connect.
    """
    if (cert is None) != (key is None):
        raise CredentialError("cert and key go together: pass both or neither")
    if isinstance(key, str) and key.startswith("pkcs11:"):
        if MICROPYTHON:
            raise CredentialError("pkcs11: keys need CPython with the hsm extra")
        from tether import hsm

        return hsm.client_context(cadata=cadata, cert=cert, key=key, insecure=insecure)
    cas = []
    for c in _ca_list(cadata):
        if _is_pem(c) and not MICROPYTHON:
            cas.extend(pem_blocks(c, "CA certificate"))  # a bundle: every root in it
        else:
            cas.append(_der(c, "CA certificate", CERT_CMD))
    for c in cas:
        check_ca(c)
    if cert is not None:
        cert = _der(cert, "certificate", CERT_CMD)
        key = _der(key, "key", KEY_CMD)
        check_pair(cert, key)
    if not cas and not insecure and MICROPYTHON:
        raise CredentialError(
            "no CA certificate: pass cadata (DER; MicroPython has no system store) "
            "or insecure=True"
        )
    if MICROPYTHON:
        return _mp_context(cas, cert, key, insecure)
    return _cpython_context(cas, cert, key, insecure)


def _mp_context(cas, cert, key, insecure):
    import tls

    ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    # PROTOCOL_TLS_CLIENT already means CERT_REQUIRED here; say it so a port change shows.
    ctx.verify_mode = tls.CERT_NONE if insecure else tls.CERT_REQUIRED
    for c in cas:  # mbedtls_x509_crt_parse appends: every call adds one more trusted root
        try:
            ctx.load_verify_locations(c)  # the native method takes DER bytes, positional
        except ValueError as exc:
            raise CredentialError("CA certificate rejected by mbedTLS: %s" % exc)
    if cert is not None:
        try:
            ctx.load_cert_chain(cert, key)
        except ValueError as exc:
            raise CredentialError("certificate/key rejected by mbedTLS: %s" % exc)
    return _MPContext(ctx, insecure)


def _nodelay(sock):
    """Turn off Nagle on a MicroPython socket; True if the port took the option.

    mbedTLS writes each handshake message with its own send(); with Nagle on, every small
    send after the first waits for the broker's delayed ACK (40 ms on Linux): a TLS connect
    measured 54 ms on the unix port with Nagle and 17 ms without. After wrapping, the
    SSLSocket has no setsockopt(), so it is now or never. Option numbers as in mqtt_stream.
    """
    try:
        import socket

        sock.setsockopt(getattr(socket, "IPPROTO_TCP", 6), getattr(socket, "TCP_NODELAY", 1), 1)
        return True
    except Exception:  # a port that refuses the option must not cost the connection
        return False


class _MPContext:
    """MicroPython: a tls.SSLContext (`_ctx`) whose wrap_socket turns Nagle off first and,
    for an insecure context, warns at each connection."""

    def __init__(self, ctx, insecure):
        self._ctx = ctx
        self.tether_insecure = insecure

    def wrap_socket(
        self, sock, server_side=False, do_handshake_on_connect=True, server_hostname=None
    ):
        if self.tether_insecure:
            _warn(server_hostname)
        _nodelay(sock)
        return self._ctx.wrap_socket(
            sock,
            server_side=server_side,
            do_handshake_on_connect=do_handshake_on_connect,
            server_hostname=server_hostname,
        )


def _key_pem_label(der):
    """The PEM label OpenSSL expects for this DER key layout."""
    items = _whole(der)
    t = items[1][0]
    if t == 0x04:
        return "EC PRIVATE KEY"
    if t == 0x02:
        return "RSA PRIVATE KEY"
    return "PRIVATE KEY"


def _to_pem(der, label):
    from binascii import b2a_base64

    b64 = b2a_base64(der).decode().replace("\n", "")
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return "-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label, "\n".join(lines), label)


def _cpython_context(cas, cert, key, insecure):
    import ssl

    cls = _cpython_insecure_class() if insecure else ssl.SSLContext
    ctx = cls(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname by default
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    for c in cas:
        try:
            ctx.load_verify_locations(cadata=c)
        except ssl.SSLError as exc:
            raise CredentialError("CA certificate rejected by OpenSSL: %s" % exc)
    if not cas and not insecure:
        ctx.load_default_certs()
    if cert is not None:
        load_cert_chain_bytes(ctx, _to_pem(cert, "CERTIFICATE"), _to_pem(key, _key_pem_label(key)))
    return ctx


def load_cert_chain_bytes(ctx, cert_pem, key_pem):
    """CPython's ssl loads keys only from files. On Linux the file is an anonymous memfd
    (never on a disk, gone with the process even if it is killed); elsewhere a private
    temp file (mode 0600) that is deleted at once."""
    import os
    import ssl

    memfd = getattr(os, "memfd_create", None)
    if memfd is not None and os.path.isdir("/proc/self/fd"):
        fd = memfd("tether-key", getattr(os, "MFD_CLOEXEC", 0))
        path = None
    else:
        import tempfile

        fd, path = tempfile.mkstemp(prefix="tether-", suffix=".pem")
    try:
        os.write(fd, (key_pem + cert_pem).encode())
        ctx.load_cert_chain(path or "/proc/self/fd/%d" % fd)
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc):
            raise CredentialError("key does not match the certificate (wrong key file?)")
        raise CredentialError("certificate/key rejected by OpenSSL: %s" % exc.reason)
    finally:
        os.close(fd)
        if path is not None:
            os.unlink(path)


_insecure_cls = None


def _cpython_insecure_class():
    global _insecure_cls
    if _insecure_cls is None:
        import ssl

        class InsecureContext(ssl.SSLContext):
            """CPython: a non-verifying context that warns on each wrapped connection."""

            tether_insecure = True

            def wrap_bio(self, *args, **kwargs):  # what asyncio calls
                _warn(kwargs.get("server_hostname"))
                return super().wrap_bio(*args, **kwargs)

            def wrap_socket(self, *args, **kwargs):
                _warn(kwargs.get("server_hostname"))
                return super().wrap_socket(*args, **kwargs)

        _insecure_cls = InsecureContext
    return _insecure_cls


# --- turning handshake failures into causes a user can act on ---

# mbedTLS reports every alert from the peer alike (its text or its name, per build).
_MBEDTLS_ALERT = (
    "the broker refused the TLS handshake: it wants a client certificate its CA signed, or a "
    "TLS version this port lacks (mbedTLS here speaks TLS 1.2 only)"
)

# (text found in the OpenSSL / mbedTLS error, cause). First match wins.
_CAUSES = (
    ("expired", "the server certificate has expired"),
    ("not yet valid", "the server certificate is not yet valid (or the device clock is wrong)"),
    ("in the future", "the server certificate is not yet valid (or the device clock is wrong)"),
    ("mismatch", "the server certificate is for another host name"),
    ("CN) does not match", "the server certificate is for another host name"),
    ("not correctly signed", "the server certificate is not signed by a trusted CA"),
    ("unable to get local issuer", "the server certificate is not signed by a trusted CA"),
    ("self-signed certificate", "the server certificate is not signed by a trusted CA"),
    ("alert unknown ca", "the broker does not trust the CA of the client certificate"),
    ("certificate required", "the broker requires a client certificate"),
    ("alert handshake failure", "the broker refused the handshake (no client certificate?)"),
    ("alert bad certificate", "the broker rejected the client certificate"),
    ("fatal alert message was received", _MBEDTLS_ALERT),
    ("FATAL_ALERT_MESSAGE", _MBEDTLS_ALERT),
)


_REFUSED = (
    "the broker closed the connection during the TLS handshake: it refused the client "
    "certificate (none sent, or signed by a CA it does not trust)"
)


def explain(exc, during_handshake=False):
    """A one-line cause for a TLS failure, or None if it is not recognised.

    The broker alone knows why it refused a client certificate; OpenSSL sends an alert but
    a reset often overtakes it, and mbedTLS reports every alert alike. So a failure the
    caller knows happened before the TLS session was up (during_handshake=True: connecting
    over TLS failed without a CONNACK) and that names no other cause is that refusal.
    exc may be an exception or its text.
    """
    text = str(exc)
    for needle, cause in _CAUSES:
        if needle in text:
            return cause
    if during_handshake:
        return _REFUSED
    return None
