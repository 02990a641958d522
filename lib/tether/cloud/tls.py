"""The TLS context of the common case, kept by the MQTT client for the whole session: a
verifying context built without tlsctx, and the wrapper that turns Nagle off. Small on
purpose: the context's class keeps this module alive, nothing more."""


class _NoDelay:
    """A MicroPython TLS context whose wrap_socket turns Nagle off first: mbedTLS sends each
    handshake message on its own, and MQTT's small packets must not wait for delayed ACKs."""

    def __init__(self, ctx):
        self._ctx = ctx
        self.tether_insecure = False

    def wrap_socket(
        self, sock, server_side=False, do_handshake_on_connect=True, server_hostname=None
    ):
        try:
            import socket

            # Linux numbers where the port does not name them (the unix port), as tlsctx does.
            sock.setsockopt(
                getattr(socket, "IPPROTO_TCP", 6), getattr(socket, "TCP_NODELAY", 1), 1
            )
        except Exception:  # a port without the option must not cost the connection
            pass
        return self._ctx.wrap_socket(
            sock,
            server_side=server_side,
            do_handshake_on_connect=do_handshake_on_connect,
            server_hostname=server_hostname,
        )


def verifying_context(cas, cert=None, key=None):
    """MicroPython: a verifying TLS context trusting `cas` (a list of DER certificates), with
    an optional client certificate and key (DER bytes, for mutual TLS): the common cases
    built without tlsctx, whose code (and qstrs, which a port never frees) a board would
    otherwise carry for one context. No checks of the pair: the caller made them once."""
    import tls

    ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = tls.CERT_REQUIRED
    for c in cas:  # each call adds one more trusted root
        ctx.load_verify_locations(c)  # ValueError when mbedTLS refuses it
    if cert is not None:
        ctx.load_cert_chain(cert, key)
    return _NoDelay(ctx)
