"""What a tether.session.Session needs only when a connect fails or someone asks how it
is doing, loaded then: which stage a connect error belongs to, the diagnostics dict."""

import gc
import sys


def connect_stage_of(exc):
    """Which of tcp / tls / mqtt an exception from connect() belongs to.

    A refused CONNECT is "mqtt"; TLS failures are ssl errors on CPython and OSError with a
    negative (mbedTLS) code or a TLS word on MicroPython. MicroPython's asyncio reports a
    refused or reset TCP connect only at the first write, so tether.mqtt wraps it in an
    MQTTError whose text carries the OSError: that is still "tcp"."""
    if type(exc).__name__ == "MQTTConnectError":
        return "mqtt"
    ssl = sys.modules.get("ssl")  # if nobody imported ssl, this is no SSL error
    for name in ("SSLError", "CertificateError"):
        cls = getattr(ssl, name, None) if ssl is not None else None
        if cls is not None and isinstance(exc, cls):
            return "tls"
    text = str(exc)
    for word in ("SSL", "TLS", "certificate", "MBEDTLS", "handshake", "OSError(-"):
        if word in text:
            return "tls"
    args = getattr(exc, "args", ())
    if args and isinstance(args[0], int) and args[0] < 0:
        return "tls"
    try:
        from tether.mqtt_packet import MQTTError
    except ImportError:
        MQTTError = ()
    if MQTTError and isinstance(exc, MQTTError) and "OSError(" not in text:
        return "mqtt"
    return "tcp"


def diagnostics(session):
    """State and counters in one dict (Session.diagnostics)."""
    d = {
        "state": session.state,
        "stage": session.stage,
        "attempts": session.attempts,
        "connects": session.connects,
        "reconnects": session.reconnects,
        "failures": session.failures,
        "failures_by_stage": dict(session.failures_by_stage),
        "connection_lost": session.connection_lost,
        "last_error": None if session.last_error is None else repr(session.last_error),
        "heap_free": gc.mem_free() if hasattr(gc, "mem_free") else None,
        "heap_min": session.heap_min,
    }
    st = session.store
    if st is not None:
        d["queue_depth"] = st.depth
        d["dropped"] = st.dropped
    conn = session.conn
    stats = getattr(conn, "stats", None) if conn is not None else None
    if stats:
        d["mqtt"] = dict(stats)
    return d
