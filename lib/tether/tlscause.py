"""The cause of a TLS failure in words, for OpenSSL's and mbedTLS' error texts.

    cause = explain(exc, during_handshake=True)   # also tether.tlsctx.explain

Used where a failed connection is reported to a person (tether.http, tether.sap.refusal);
the component tether-tlscause, which those require, so an image whose clouds never explain
a failure (Arduino, Azure) does not carry the table.
"""

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
