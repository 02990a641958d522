"""tether.sap's parts without a connection: the refusal explanations (CONNACK codes by name,
TLS failures as OpenSSL and mbedTLS report them, an expired device certificate), reading a
certificate's expiry, the constructor's credential checks, and the firmware profile."""

import os
from binascii import hexlify

from dt_creds import CA_DER, CERT_DER, KEY_DER
from harness import raises
from tether.compat import MICROPYTHON
from tether.errors import CredentialError
from tether.mqtt import MQTTConnectError
from tether.mqtt_packet import MQTTError
from tether.sap import SAPIoTClient, profile, refusal


class _Client:
    server = "gw.test"
    port = 8883
    not_after = None


def _explain(exc, not_after=None):
    c = _Client()
    c.not_after = not_after
    return refusal.explain(c, exc)


def test_connack_codes_are_named_and_explained():
    e = _explain(MQTTConnectError(2))
    assert e.code == 2 and e.permanent
    assert str(e).startswith("CONNACK 2 (identifier rejected): ") and "alternate id" in str(e)
    e = _explain(MQTTConnectError(5))
    assert e.code == 5 and e.permanent and "not authorized" in str(e) and "revoked" in str(e)
    e = _explain(MQTTConnectError(3))
    assert e.code == 3 and not e.permanent and "server unavailable" in str(e)
    e = _explain(MQTTConnectError(4))
    assert "certificate only" in str(e)


def test_tls_failures_are_explained_as_each_interpreter_reports_them():
    # OpenSSL names the alert; the device certificate from another CA:
    e = _explain(OSError("[SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca (_ssl.c:2580)"))
    assert e.permanent and e.code is None and str(e).startswith("TLS: ")
    assert "does not trust the CA of the client certificate" in str(e) and "cockpit" in str(e)
    # TLS 1.3: the refusal shows as the close before the CONNACK.
    e = _explain(MQTTError("connection lost waiting for CONNACK: connection closed (EOF)"))
    assert e.permanent and "refused the device certificate" in str(e)
    # mbedTLS handshakes at the first write: the gateway hanging up then.
    e = _explain(MQTTError("write failed: OSError(32,)"))
    assert e.permanent and str(e).startswith("TLS: ")
    # A closed port is not a certificate problem, and retrying may help.
    e = _explain(MQTTError("write failed: OSError(111,)"))
    assert not e.permanent and str(e).startswith("cannot reach gw.test:8883")


def test_an_expired_device_certificate_is_named():
    e = _explain(OSError("[SSL: SSLV3_ALERT_CERTIFICATE_EXPIRED] sslv3 alert certificate expired"))
    assert e.permanent and "has expired" in str(e) and "sap_cert" in str(e)
    # mbedTLS says nothing specific: the certificate's own date (read when the context was
    # built) against the clock tells.
    e = _explain(MQTTError("write failed: OSError(32,)"), not_after=1000000000)
    assert "has expired (valid until 2001-09-09 01:46 UTC)" in str(e)
    e = _explain(MQTTError("write failed: OSError(32,)"), not_after=4733510400)
    assert "expired" not in str(e)


def test_a_certificates_expiry_is_read_from_its_der():
    assert refusal.not_after(CERT_DER) == 4733510400  # GeneralizedTime 2120-01-01
    assert refusal.not_after(b"\x30\x03\x02\x01\x00") is None
    assert refusal.not_after("pkcs11:object=x") is None
    assert refusal._date(0) == "1970-01-01 00:00"
    assert refusal._days(2000, 3, 1) * 86400 == 951868800


def test_the_constructor_refuses_what_cannot_log_in():
    exc = raises(CredentialError, SAPIoTClient, "dev-1", "gw.test")
    assert "certificate only" in str(exc) and "sap_cert" in str(exc)
    if MICROPYTHON:
        exc = raises(CredentialError, SAPIoTClient, "dev-1", "gw.test", cert=CERT_DER,
                     key=KEY_DER)  # fmt: skip
        assert "ca= is required on MicroPython" in str(exc)
    c = SAPIoTClient(b"dev-1", "gw.test", cert=CERT_DER, key=KEY_DER, ca=CA_DER)
    assert (c.client_id, c.port, c.keepalive) == ("dev-1", 8883, 60)
    assert c.tls_context() is not None and c.not_after == 4733510400


def test_an_encrypted_key_points_at_the_converter():
    pem = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n"
    c = SAPIoTClient("dev-1", "gw.test", cert=CERT_DER, key=pem, ca=CA_DER)
    exc = raises(CredentialError, c.tls_context)
    assert "encrypted" in str(exc) and "tools.sap_cert" in str(exc)


_DIR = []


def _dir(files):
    if not _DIR:
        _DIR.append("/tmp/tether-dt-sap-profile-%s" % hexlify(os.urandom(6)).decode())
        os.mkdir(_DIR[0])
    d = _DIR[0]
    for name, data in files.items():
        with open(d + "/" + name, "wb") as f:
            f.write(data)
    return d


def test_the_firmware_profile_builds_a_client_from_settings():
    d = _dir({"key.der": KEY_DER, "cert.der": CERT_DER, "ca.der": CA_DER})
    creds = {"key": "key.der", "cert": "cert.der", "ca": "ca.der"}
    s = {"cloud": "sap", "device_id": "dev-1", "server": "demo.eu10.cp.iot.sap", "_dir": d,
         "credentials": creds, "ack_timeout_ms": 5000}  # fmt: skip
    c = profile.make_client(s)
    assert (c.device_alternate_id, c.server, c.port, c.keepalive) == (
        "dev-1", "demo.eu10.cp.iot.sap", 8883, 60,
    )  # fmt: skip
    assert c.ack_timeout_ms == 5000 and c._cert == CERT_DER and c._key == KEY_DER
    e = raises(ValueError, profile.make_client, dict(s, server=None))
    assert "server missing" in str(e)
    e = raises(ValueError, profile.make_client, dict(s, credentials={"ca": "ca.der"}))
    assert "certificate only" in str(e)
    e = raises(CredentialError, profile.make_client, dict(s, credentials=dict(creds, key="no")))
    assert "no" in str(e)
