"""tether.arduino.profile: the firmware's settings.json -> an ArduinoCloudClient.

Basic auth from the secrets, mTLS from DER files (as bytes: no path reaches the client),
an SE05x key with the signing hook, the overrides, and the refusals the firmware reports
before it arms the watchdog.
"""

import os
from binascii import hexlify

from dt_creds import CA_DER, CERT_DER, KEY_DER
from harness import raises
from tether.arduino import profile
from tether.errors import CredentialError
from tether.hal import se05x
from tether.hal.fake_se05x import FakeSE05x

DEVICE = "e6a1f9b0-0000-4000-8000-000000000064"
_DIR = []


def _dir(files):
    if not _DIR:
        _DIR.append("/tmp/tether-dt-profile-%s" % hexlify(os.urandom(6)).decode())
        os.mkdir(_DIR[0])
    d = _DIR[0]
    for name in os.listdir(d):
        os.remove(d + "/" + name)
    for name, data in files.items():
        with open(d + "/" + name, "wb") as f:
            f.write(data)
    return d


def _settings(**kw):
    s = {"device_id": DEVICE, "_secrets": {"secret_key": "k3y"}}
    s.update(kw)
    if "_dir" not in s:
        s["_dir"] = _dir({})
    return s


def test_basic_auth_from_the_secrets():
    c = profile.make_client(_settings(server="127.0.0.1", port=1883, keepalive=30))
    assert (c.device_id, c.username, c._password) == (DEVICE, DEVICE, "k3y")
    assert (c.server, c.port, c.keepalive) == ("127.0.0.1", 1883, 30)
    assert "certfile" not in c.ssl_params and "keyfile" not in c.ssl_params


def test_basic_auth_without_a_secret_key_is_refused():
    for secrets in ({}, {"secret_key": ""}):
        exc = raises(ValueError, profile.make_client, _settings(_secrets=secrets))
        assert "secret_key missing" in str(exc)


def test_mutual_tls_from_der_files_passes_bytes_to_the_client():
    d = _dir({"key.der": KEY_DER, "cert.der": CERT_DER, "ca.der": CA_DER})
    creds = {"key": "key.der", "cert": "cert.der", "ca": "ca.der"}
    c = profile.make_client(_settings(_dir=d, _secrets={}, credentials=creds))
    assert c.username is None and c._password is None  # the certificate is the identity
    p = c.ssl_params
    assert (p["keyfile"], p["certfile"], p["cadata"]) == (KEY_DER, CERT_DER, CA_DER)


def test_a_missing_credential_file_is_a_credential_error():
    d = _dir({"cert.der": CERT_DER})
    s = _settings(_dir=d, credentials={"key": "key.der", "cert": "cert.der"})
    assert "key.der" in str(raises(CredentialError, profile.make_client, s))


def test_overrides_reach_the_client():
    s = _settings(insecure=True, server_hostname="broker.test", time={"servers": ["ntp.test"]})
    c = profile.make_client(s)
    assert c.ssl_params["insecure"] is True and c.ssl_params["server_hostname"] == "broker.test"
    assert c.ntp_server == "ntp.test"


def test_an_se05x_certificate_comes_from_the_element_given_in_the_settings():
    # settings["_se05x"]: the firmware's (fake) secure element on the unix port.
    se = se05x.SecureElement(FakeSE05x(objects={0x65: CERT_DER + b"\xff" * 50}))
    d = _dir({"key.der": KEY_DER})
    creds = {"key": "key.der", "cert": "se05x:token=0x00000065"}
    c = profile.make_client(_settings(_dir=d, _se05x=se, credentials=creds))
    assert c.ssl_params["certfile"] == CERT_DER  # read with the certificate's own length
