"""SSL contexts that verify the server, for MicroPython's `tls` and CPython's `ssl`.

``client_context(cadata, cert, key)`` returns something `asyncio.open_connection(ssl=...)`
accepts on either interpreter. It exists because the defaults are traps: on MicroPython the
`ssl` wrapper's SSLContext does not verify and `open_connection(ssl=True)` verifies nothing.
Here the server's certificate and host name are always checked unless the caller passes
``insecure=True``, and such a context logs a warning every time it wraps a connection.

Credentials are DER or unencrypted PEM bytes on both interpreters (the PEM armour is
decoded here; mbedTLS gets DER). Files, SE05x and PKCS#11 references are tether.creds' job.
Everything is checked before the first connection, so a wrong file fails here with a
message that says what to do instead of as an alert in the middle of a handshake.

A board carries only what it runs: CPython's contexts are built in tether.tlshost (CPython
only, never frozen), and `explain()` (a TLS failure's cause in words) lives in
tether.tlscause (the clouds that report failures require it); both stay reachable here.
"""

from tether import log
from tether.compat import MICROPYTHON
from tether.errors import CredentialError  # noqa: F401 (re-exported: older imports use it)

_log = log.getLogger("tls")

# The checks and the PEM decoder live in tether.certs (with tether.der), imported on first
# use: a context from DER CAs alone (a password device) loads neither. Still reachable here.
# An image may lack them (the tether-certauth component): PEM and client certificates then
# raise this (tether.nocert's message).
_NO_CERTAUTH = (
    "PEM or a client certificate: certificate authentication is not in this image: add the "
    "tether-certauth component (docs/boards.md)"
)
_FROM_CERTS = (
    "CERT_CMD",
    "KEY_CMD",
    "cert_spki",
    "check_ca",
    "check_pair",
    "conversion_command",
    "decrypt_command",
    "is_pem",
    "pem_to_der",
)


def _certs():
    try:
        from tether import certs
    except ImportError:  # an image without certificate authentication
        raise CredentialError(_NO_CERTAUTH)
    return certs


def __getattr__(name):
    # Names that live elsewhere, reachable here as before: tether.certs' checks, the causes
    # of TLS failures (tether.tlscause: images whose clouds explain failures carry it) and
    # CPython's key loader (tether.tlshost, never on a board).
    if name in _FROM_CERTS:
        return getattr(_certs(), name)
    if name == "explain":
        from tether.tlscause import explain

        return explain
    if name == "load_cert_chain_bytes" and not MICROPYTHON:
        from tether.tlshost import load_cert_chain_bytes

        return load_cert_chain_bytes
    raise AttributeError(name)


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

    cadata: the root CA as DER or PEM bytes, or a list of them (each is trusted; a PEM
        bundle adds every certificate in it).
    cert, key: the device's certificate and private key (DER or unencrypted PEM bytes), for
        mutual TLS; both or none. Files, SE05x and PKCS#11 keys: tether.creds.tls_context.
    insecure: skip server verification. Never for production; warns at every connect.
    """
    if (cert is None) != (key is None):
        raise CredentialError("cert and key go together: pass both or neither")
    if isinstance(key, str) and key.startswith(("pkcs11:", "se05x:")):
        # creds sits above tlsctx and dispatches these (tlsctx imports neither hsm nor SE)
        raise CredentialError(
            "key %s is a token reference: build the context with "
            "tether.creds.tls_context(ca=..., cert=..., key=...)" % key.split(";")[0]
        )
    cas = []
    for c in _ca_list(cadata):
        if isinstance(c, (bytes, bytearray, memoryview)) and c and c[0] == 0x30:
            cas.append(bytes(c))  # DER: mbedTLS / OpenSSL parse it and refuse a bad one
        else:
            certs = _certs()
            if certs.is_pem(c):
                for d in certs.pem_to_der(c, "ca"):  # a bundle: every root in it
                    certs.check_ca(d)
                    cas.append(d)
            else:
                certs.check_ca(certs._as_bytes(c, "CA certificate"))  # raises, saying why
    if cert is not None:
        certs = _certs()
        cert = certs._der(cert, "cert")
        key = certs._der(key, "key")
        certs.check_pair(cert, key)
    if not cas and not insecure and MICROPYTHON:
        raise CredentialError(
            "no CA certificate: pass cadata (MicroPython has no system store) or insecure=True"
        )
    if MICROPYTHON:
        return mp_context(cas, cert, key, insecure)
    from tether import tlshost  # CPython's ssl contexts: a module no board carries

    return tlshost.context(cas, cert, key, insecure, _warn)


def mp_context(cas, cert, key, insecure):
    """MicroPython: a context from DER CAs, certificate and key as they are (tether.astarte.pem
    uses it for an insecure connection without the certificate checks above)."""
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
