"""tether.arduino.ssl_params: arduino-iot-cloud-py's ssl_params become one verifying context.

Fixtures (CA, device certificate and key, valid 2020-2120) are dt_creds'; nothing connects.
"""

import io
import sys

from dt_creds import CA_DER, CERT_DER, KEY_DER, _dir, _pem
from harness import raises
from tether import creds, log, tlsctx
from tether.arduino.ssl_params import cert_auth, context_from_ssl_params
from tether.compat import MICROPYTHON
from tether.errors import CredentialError


class _Spy:
    """Stands in for creds.tls_context and records what the translation asked for."""

    def __init__(self):
        self.calls = []
        self._real = creds.tls_context

    def __enter__(self):
        creds.tls_context = self
        return self

    def __exit__(self, *exc):
        creds.tls_context = self._real

    def __call__(self, **kw):
        self.calls.append(kw)
        return object()


def test_without_a_ca_the_arduino_roots_for_the_port_are_trusted():
    from tether.arduino import roots

    with _Spy() as spy:
        context_from_ssl_params({}, 8885)
        context_from_ssl_params({}, 8884)
        context_from_ssl_params({"keyfile": "k", "certfile": "c"}, 8884)
        context_from_ssl_params({"keyfile": "k", "certfile": "c"}, 1234)
    assert spy.calls[0]["ca"] == [roots.ARDUINO_ROOT]
    assert len(spy.calls[1]["ca"]) == 5 and roots.ARDUINO_ROOT not in spy.calls[1]["ca"]
    assert spy.calls[2]["ca"] == spy.calls[1]["ca"]  # 8884 is the password port
    assert spy.calls[3]["ca"] == [roots.ARDUINO_ROOT]  # any other port with a certificate
    assert spy.calls[0]["insecure"] is False
    assert "tether.arduino.roots" not in sys.modules  # ~4.6 KB dropped after use


def test_cadata_wins_over_cafile_and_cafile_over_the_override():
    with _Spy() as spy:
        context_from_ssl_params({"cadata": CA_DER, "cafile": "x.pem"}, 8885, ca_override="o")
        context_from_ssl_params({"cafile": "x.pem"}, 8885, ca_override="o")
        context_from_ssl_params({}, 8885, ca_override="o")
        context_from_ssl_params({}, None)
    assert [c["ca"] for c in spy.calls] == [CA_DER, "x.pem", "o", None]


def test_pem_files_make_a_verifying_context():
    d = _dir(
        {
            "ca.pem": _pem(CA_DER, "CERTIFICATE"),
            "cert.pem": _pem(CERT_DER, "CERTIFICATE"),
            "key.pem": _pem(KEY_DER, "EC PRIVATE KEY"),
        }
    )
    p = {"cafile": d + "/ca.pem", "certfile": d + "/cert.pem", "keyfile": d + "/key.pem"}
    ctx = context_from_ssl_params(p, 8885)
    assert not tlsctx.is_insecure(ctx)
    assert cert_auth(p) and not cert_auth({"cafile": "x"})


def test_verify_mode_cert_none_is_the_loud_opt_out():
    buf = io.StringIO()
    log.basicConfig(level=log.DEBUG, stream=buf)
    try:
        ctx = context_from_ssl_params({"verify_mode": 0}, 8885)
        assert tlsctx.is_insecure(ctx)
        assert tlsctx.is_insecure(context_from_ssl_params({"insecure": True}, 8885))
        assert not tlsctx.is_insecure(context_from_ssl_params({"verify_mode": 2}, 8885))
    finally:
        log.basicConfig(level=log.INFO, stream=None)
    assert buf.getvalue().count("TLS verification is OFF (ssl_params)") == 2, buf.getvalue()


def test_key_references_and_the_sign_hook_reach_creds():
    hook = lambda scalar, digest: None  # noqa: E731
    p = {"keyfile": "se05x:token=0x64", "certfile": "se05x:token=0x65", "pin": "1"}
    with _Spy() as spy:
        context_from_ssl_params(dict(p, ecdsa_sign_callback=hook), 8885, se="SE")
    kw = spy.calls[0]
    assert kw["key"] == "se05x:token=0x64" and kw["cert"] == "se05x:token=0x65"
    assert kw["sign_hook"] is hook and kw["se"] == "SE" and kw["pin"] == "1"
    # for real: this port's TLS has no hook, which the error names
    exc = raises(CredentialError, context_from_ssl_params, p, 8885)
    assert "ecdsa_sign_callback" in str(exc)


def test_pkcs11_keyfile_needs_cpython():
    if MICROPYTHON:
        p = {"keyfile": "pkcs11:object=k", "certfile": "pkcs11:object=c"}
        exc = raises(CredentialError, context_from_ssl_params, p, 8885)
        assert "CPython" in str(exc)


def test_ciphers_apply_on_cpython_and_are_reported_where_they_cannot():
    p = {"cadata": CA_DER, "ciphers": "ECDHE-ECDSA-AES128-GCM-SHA256"}
    if MICROPYTHON:
        buf = io.StringIO()
        log.basicConfig(level=log.DEBUG, stream=buf)
        try:
            context_from_ssl_params(p, 8885)
        finally:
            log.basicConfig(level=log.INFO, stream=None)
        assert "ciphers ignored" in buf.getvalue()
    else:
        import ssl

        ctx = context_from_ssl_params(p, 8885)
        names = [c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"]
        assert names == ["ECDHE-ECDSA-AES128-GCM-SHA256"], names
        raises(ssl.SSLError, context_from_ssl_params, dict(p, ciphers="NO-SUCH"), 8885)
