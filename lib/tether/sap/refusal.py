"""Why SAP IoT refused a connection, in words a user can act on (loaded on a failure only).

    err = explain(client, exc)     # -> SAPConnectError: str(err), err.code, err.permanent

SAP's gateway answers a CONNECT it does not like with a CONNACK code (2: the client id is
not the certificate's device alternate id; 5: the certificate belongs to no device), and a
certificate it cannot trust or that has expired with a TLS alert. OpenSSL names the alert;
mbedTLS reports every alert alike, so the client certificate's expiry (read from it when
the TLS context was built) is compared with the clock too. `permanent` marks refusals
that retrying cannot fix: wait_connected() raises at once instead of waiting them out.
"""

import time

from tether.sap.errors import SAPError

_WHY_CONNACK = {
    1: ("unacceptable protocol version", "the gateway wants MQTT 3.1.1", True),
    2: (
        "identifier rejected",
        "the client id must be the device alternate id of the certificate's device: check "
        "device_alternate_id (it is the alternate id, not the device id)",
        True,
    ),
    3: (
        "server unavailable",
        "the gateway is up but cannot serve now (maintenance, or the tenant's IoT service is "
        "stopped); check the host name too",
        False,
    ),
    4: (
        "bad user name or password",
        "SAP IoT authenticates by client certificate only: no user name or password",
        True,
    ),
    5: (
        "not authorized",
        "the gateway knows no device for this certificate: it was revoked or replaced (a new "
        "one generated in the cockpit), or the device is not on the MQTT gateway",
        True,
    ),
}

CONVERT = "python -m tools.sap_cert BUNDLE.pem (docs/sap.md, 'Provisioning')"
_RENEW = "generate a new certificate in the cockpit and convert it with tools/sap_cert.py"


class SAPConnectError(SAPError):
    """A refused connect: the message says why and what to do; `code` is the CONNACK code
    (None for TLS and network failures); `permanent` is True when retrying cannot help."""

    def __init__(self, text, code=None, permanent=False):
        super().__init__(text)
        self.code = code
        self.permanent = permanent


def missing(credentials):
    """The CredentialError for a client made without its certificate and key (credentials
    True) or, on MicroPython, without ca=."""
    from tether.errors import CredentialError

    if credentials:
        return CredentialError(
            "SAP IoT devices log in with their certificate only: pass cert= and key= "
            "(make them from SAP's bundle with %s)" % CONVERT
        )
    return CredentialError(
        "ca= is required on MicroPython (no system trust store, and SAP's root CA is "
        "not embedded): the root that signed your tenant's server certificate, DER "
        "or PEM (docs/sap.md, 'Server certificate')"
    )


def explain(client, exc):
    text = "%s: %s" % (type(exc).__name__, exc)
    code = getattr(exc, "code", None)
    if type(exc).__name__ == "MQTTConnectError" and code in _WHY_CONNACK:
        name, why, perm = _WHY_CONNACK[code]
        return SAPConnectError("CONNACK %d (%s): %s" % (code, name, why), code, perm)
    if type(exc).__name__ == "CredentialError":
        return SAPConnectError(str(exc), None, True)
    low = text.lower()
    exp = client.not_after
    now = int(time.time())
    # TLS 1.3 finishes the client's handshake before the server checks its certificate: a
    # refusal then shows as the connection closing before the CONNACK (OpenSSL's alert is
    # often lost in the close). SAP's gateway answers every CONNECT it reads.
    # On MicroPython the hang-up may also surface on the read of the CONNACK (EPIPE).
    early = "connack" in low and (
        "eof" in low or "closed" in low or "reset" in low or "oserror(32" in low
    )
    # MicroPython's TLS handshakes at the first write: the peer hanging up then (EPIPE,
    # ECONNRESET; a closed port is ECONNREFUSED) is the handshake refused.
    hangup = "write failed" in low and ("oserror(32" in low or "oserror(104" in low)
    tls = early or hangup or _is_tls(exc, low)
    if "alert certificate expired" in low or (tls and exp is not None and 0 < exp < now):
        when = "" if exp is None else " (valid until %s UTC)" % _date(exp)
        return SAPConnectError(
            "TLS: the gateway refused the device certificate: it has expired%s; %s"
            % (when, _RENEW),
            None,
            True,
        )
    if early:
        return SAPConnectError(
            "TLS: the gateway closed the connection before answering CONNECT: it refused the "
            "device certificate (not one SAP issued for a device of this tenant, or revoked); "
            "download the device's certificate again (cockpit -> device -> Certificate) and "
            "convert it with tools/sap_cert.py (%s)" % text,
            None,
            True,
        )
    if tls:
        from tether import tlsctx

        cause = tlsctx.explain(exc, during_handshake=True)
        hint = ""
        if "client certificate" in (cause or "") or "CA of the client" in (cause or ""):
            hint = (
                "; SAP accepts only certificates it issued for the device (cockpit -> "
                "device -> Certificate)"
            )
        return SAPConnectError(
            "TLS: %s%s (%s)" % (cause or "handshake failed", hint, text), None, True
        )
    return SAPConnectError("cannot reach %s:%d: %s" % (client.server, client.port, text))


def _is_tls(exc, low):
    from tether.session import connect_stage_of

    if connect_stage_of(exc) == "tls":
        return True
    for w in ("ssl", "tls", "certificate", "alert", "handshake"):
        if w in low:
            return True
    return False


def _date(t):
    days, s = divmod(t, 86400)
    y, m, d = _civil(days)
    return "%04d-%02d-%02d %02d:%02d" % (y, m, d, s // 3600, s % 3600 // 60)


def _civil(days):
    # Days since 1970-01-01 -> (year, month, day), proleptic Gregorian (H. Hinnant).
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (m <= 2), m, d


def _days(y, m, d):
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def not_after(cert):
    """A DER certificate's notAfter as Unix seconds, or None (not DER, unreadable)."""
    if not isinstance(cert, (bytes, bytearray)):
        return None  # a pkcs11: reference
    try:
        from tether import der

        _, s, _ = der.read_tlv(cert, 0)  # Certificate
        _, s, e = der.read_tlv(cert, s)  # TBSCertificate
        tag, _, p = der.read_tlv(cert, s, e)
        if tag == 0xA0:  # [0] version; the serial number follows
            tag, _, p = der.read_tlv(cert, p, e)
        for _ in range(2):  # signature algorithm, issuer
            _, _, p = der.read_tlv(cert, p, e)
        _, vs, ve = der.read_tlv(cert, p, e)  # validity
        _, _, b = der.read_tlv(cert, vs, ve)  # notBefore
        tag, a, b = der.read_tlv(cert, b, ve)  # notAfter
        t = bytes(cert[a:b]).decode()
        if tag == 0x17:  # UTCTime YYMMDDHHMMSSZ
            y = int(t[0:2])
            y += 2000 if y < 50 else 1900
            t = t[2:]
        else:  # GeneralizedTime YYYYMMDDHHMMSSZ
            y = int(t[0:4])
            t = t[4:]
        days = _days(y, int(t[0:2]), int(t[2:4]))
        return days * 86400 + int(t[4:6]) * 3600 + int(t[6:8]) * 60 + int(t[8:10])
    except Exception:
        return None
