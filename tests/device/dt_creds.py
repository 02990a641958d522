"""tether.creds: DER and PEM sources, encrypted PEM refused with the command, SE05x references.

The certificates are a fixed throwaway set valid 2020-2120 (a CA and a device whose
certificate is 497 bytes: longer than the 412-byte slot older code assumed).
"""

import os
from binascii import b2a_base64, hexlify, unhexlify

from harness import raises
from tether import creds, tlsctx
from tether.compat import MICROPYTHON
from tether.hal import se05x
from tether.hal.fake_se05x import FakeSE05x
from tether.tlsctx import CredentialError

CA_DER = unhexlify(
    "308201683082010ea003020102020101300a06082a8648ce3d0403023032311d301b060355040a0c14546574"
    "68657220637265647320666978747572653111300f06035504030c0863726564732043413020170d32303031"
    "30313030303030305a180f32313230303130313030303030305a3032311d301b060355040a0c145465746865"
    "7220637265647320666978747572653111300f06035504030c0863726564732043413059301306072a8648ce"
    "3d020106082a8648ce3d0301070342000407680083950cad248a78821acf576acbf68858904c19c65cc974e9"
    "1488e8504ba0aa6d145097702005328e4511ec90faa8abc39d4ef111aa1faa06e9cd659c6ca3133011300f06"
    "03551d130101ff040530030101ff300a06082a8648ce3d0403020348003045022051c30f4fc47740ad752545"
    "3b76e7292054c8234f842577ebf236b2855d7364ab022100dbfe19d4e6bff59f2b5112430808da705f5a2442"
    "b6d032f0e7d3360b67b6458f"
)
CERT_DER = unhexlify(
    "308201ed30820192a003020102020102300a06082a8648ce3d0403023032311d301b060355040a0c14546574"
    "68657220637265647320666978747572653111300f06035504030c0863726564732043413020170d32303031"
    "30313030303030305a180f32313230303130313030303030305a304e311d301b060355040a0c145465746865"
    "722063726564732066697874757265312d302b06035504030c2465366131663962302d303030302d34303030"
    "2d383030302d3030303030303030303036343059301306072a8648ce3d020106082a8648ce3d030107034200"
    "04b10c20c2852b5aef38247b44774a04b590cf03ba20c1f4c1c84b7c50bca711ffc83893f96043449754586a"
    "85195a2337b4b3a1040dee4cf94e03a5eaa8952444a37b3079300c0603551d130101ff04023000301d060355"
    "1d0e0416041421f0384cfdf1866baa6572ef4bc30db011be08fa301f0603551d230418301680148cb020a42d"
    "c89c05005d82525c44a63a73c5e80b30290603551d1104223020821e6465766963652d65366131663962302e"
    "7465746865722e696e76616c6964300a06082a8648ce3d0403020349003046022100e47c83ca6632326d7382"
    "76336190d8e6f829268e5bca8bcc5d8ff5828b5462ad0221008da16ae1228c0328686b2a84ef119a89848503"
    "c05c221e5866e93b5900fac840"
)
KEY_DER = unhexlify(
    "307702010104207bcc6d1d16ad78bfe3ff12d484e0349cf7315647381251ff9634d28073a657eba00a06082a"
    "8648ce3d030107a14403420004b10c20c2852b5aef38247b44774a04b590cf03ba20c1f4c1c84b7c50bca711"
    "ffc83893f96043449754586a85195a2337b4b3a1040dee4cf94e03a5eaa8952444"
)
KEY_B64 = b2a_base64(KEY_DER).strip().decode()


def _pem(der, label):
    body = b2a_base64(der).decode().strip()
    return "-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label, body, label)


_DIR = []  # one folder per process (tests run one at a time; other runs share /tmp)


def _dir(files):
    if not _DIR:
        _DIR.append("/tmp/tether-dt-creds-%s" % hexlify(os.urandom(6)).decode())
        os.mkdir(_DIR[0])
    d = _DIR[0]
    for name in os.listdir(d):
        os.remove(d + "/" + name)
    for name, data in files.items():
        with open(d + "/" + name, "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode())
    return d


def _settings(d, **cred):
    return {"_dir": d, "credentials": cred}


def test_der_files_load_as_bytes_for_tlsctx():
    d = _dir({"key.der": KEY_DER, "cert.der": CERT_DER, "ca.der": CA_DER})
    kw = creds.load_credentials(_settings(d, key="key.der", cert="cert.der", ca="ca.der"))
    assert kw == {"cadata": CA_DER, "cert": CERT_DER, "key": KEY_DER}
    assert creds.make_context(kw) is not None  # tlsctx accepts them on this interpreter


def test_flat_key_and_cert_are_accepted_too():
    d = _dir({"key.der": KEY_DER, "cert.der": CERT_DER})
    kw = creds.load_credentials({"key": d + "/key.der", "cert": d + "/cert.der"})
    assert kw == {"cert": CERT_DER, "key": KEY_DER}


def test_no_credentials_means_basic_auth():
    assert creds.load_credentials({}) == {}
    d = _dir({"ca.der": CA_DER})
    assert creds.load_credentials(_settings(d, ca="ca.der")) == {"cadata": CA_DER}


def test_pem_files_load_as_the_same_der():
    d = _dir(
        {
            "key.pem": _pem(KEY_DER, "EC PRIVATE KEY"),
            "cert.pem": _pem(CERT_DER, "CERTIFICATE"),
            "ca.pem": _pem(CA_DER, "CERTIFICATE"),
        }
    )
    kw = creds.load_credentials(_settings(d, key="key.pem", cert="cert.pem", ca="ca.pem"))
    assert kw == {"cadata": CA_DER, "cert": CERT_DER, "key": KEY_DER}
    assert creds.make_context(kw) is not None


def test_pem_under_a_der_name_loads_too():
    d = _dir({"key.der": _pem(KEY_DER, "EC PRIVATE KEY"), "cert.der": CERT_DER})
    kw = creds.load_credentials(_settings(d, key="key.der", cert="cert.der"))
    assert kw["key"] == KEY_DER


def test_a_source_may_be_a_path_der_or_pem_bytes_or_text():
    d = _dir({"key.der": KEY_DER, "key.pem": _pem(KEY_DER, "EC PRIVATE KEY")})
    pem = _pem(KEY_DER, "EC PRIVATE KEY")
    for src in (d + "/key.der", "key.pem", KEY_DER, bytearray(KEY_DER), pem, pem.encode()):
        assert creds.load_key(src, base_dir=d) == KEY_DER, src
    assert creds.load_cert(_pem(CERT_DER, "CERTIFICATE")) == CERT_DER
    # "EC PARAMETERS" before the key, as `openssl ecparam -genkey` writes it
    params = "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"
    assert creds.load_key(params + pem) == KEY_DER


def test_a_pem_bundle_gives_every_ca_and_lists_mix_sources():
    d = _dir({"ca.der": CA_DER})
    bundle = _pem(CERT_DER, "CERTIFICATE") + _pem(CA_DER, "CERTIFICATE")
    assert creds.load_ca(bundle) == [CERT_DER, CA_DER]
    assert creds.load_ca(["ca.der", bundle.encode()], base_dir=d) == [CA_DER, CERT_DER, CA_DER]
    d = _dir({"bundle.pem": bundle})
    kw = creds.load_credentials(_settings(d, ca="bundle.pem"))
    assert kw == {"cadata": [CERT_DER, CA_DER]}


def test_encrypted_pem_key_is_refused_with_the_command_that_decrypts_it():
    enc = _pem(KEY_DER, "ENCRYPTED PRIVATE KEY")
    d = _dir({"key.pem": enc, "cert.der": CERT_DER})
    msg = str(
        raises(
            CredentialError, creds.load_credentials, _settings(d, key="key.pem", cert="cert.der")
        )
    )
    assert "encrypted" in msg and "passphrase" in msg, msg
    assert "openssl pkey -in %s/key.pem -out %s/key-plain.pem" % (d, d) in msg, msg
    assert KEY_B64[:16] not in msg  # never the secret itself
    assert "openssl pkey -in key.pem" in str(raises(CredentialError, creds.load_key, enc))


def test_pem_the_board_cannot_read_gets_the_exact_conversion_command():
    d = _dir({"cert.pem": _pem(CERT_DER, "TRUSTED CERTIFICATE"), "key.der": KEY_DER})
    msg = str(
        raises(
            CredentialError, creds.load_credentials, _settings(d, key="key.der", cert="cert.pem")
        )
    )
    assert "openssl x509 -in %s/cert.pem -outform DER -out %s/cert.der" % (d, d) in msg, msg
    d = _dir({"key.pem": _pem(KEY_DER, "DSA PRIVATE KEY"), "cert.der": CERT_DER})
    msg = str(raises(CredentialError, creds.load_key, "key.pem", d))
    assert "openssl pkey -in %s/key.pem -outform DER -out %s/key.der" % (d, d) in msg, msg


def test_missing_empty_and_garbage_files_name_the_file():
    d = _dir({"empty.der": b"", "junk.der": b"hello", "cert.der": CERT_DER})
    for name, word in (
        ("nope.der", "cannot be read"),
        ("empty.der", "empty"),
        ("junk.der", "not DER nor PEM"),
    ):
        msg = str(
            raises(
                CredentialError, creds.load_credentials, _settings(d, key=name, cert="cert.der")
            )
        )
        assert name in msg and word in msg, msg


def test_key_without_cert_is_refused():
    d = _dir({"key.der": KEY_DER})
    raises(CredentialError, creds.load_credentials, _settings(d, key="key.der"))


def test_se05x_tokens_parse():
    assert se05x.parse_token("se05x:token=0x00000064") == 0x64
    assert se05x.parse_token("se05x:token=101") == 101
    assert se05x.parse_token("key.der") is None
    for bad in ("se05x:0x64", "se05x:token=0xZZ", "se05x:token=0x0"):
        raises(ValueError, se05x.parse_token, bad)


def test_reference_key_names_its_object():
    ref = se05x.reference_key(0x64)
    assert len(ref) == 67 and ref[0] == 0x30
    assert se05x.reference_oid(ref[-32:]) == 0x64
    assert se05x.reference_oid(KEY_DER[7:39]) is None  # an ordinary key's scalar


def test_se05x_key_where_the_port_tls_cannot_sign_is_a_clear_error():
    # the unix port's and CPython's TLS have no ecdsa_sign_callback
    assert not creds.port_has_sign_hook()
    se = se05x.SecureElement(FakeSE05x({0x65: CERT_DER}, {0x64: lambda d: b"0"}))
    settings = {"credentials": {"key": "se05x:token=0x00000064", "cert": "se05x:token=0x00000065"}}
    msg = str(raises(CredentialError, creds.load_credentials, settings, se))
    assert "ecdsa_sign_callback" in msg and "Portenta H7" in msg and "files" in msg, msg


def test_se05x_certificate_is_read_with_its_real_length():
    slot = CERT_DER + b"\xff" * 300  # a provisioned slot is larger than what it holds
    fake = FakeSE05x({0x65: slot, 0x66: CA_DER})
    se = se05x.SecureElement(fake)
    d = _dir({"key.der": KEY_DER})
    kw = creds.load_credentials(_settings(d, key="key.der", cert="se05x:token=0x00000065"), se)
    assert kw["cert"] == CERT_DER and len(kw["cert"]) == 497
    assert se.read_certificate(0x66) == CA_DER  # 364 bytes: no fixed size either way


def test_se05x_key_signs_through_the_secure_element_when_the_port_can():
    digests = []

    def signer(digest):
        digests.append(digest)
        return b"\x30\x06\x02\x01\x01\x02\x01\x02"

    se = se05x.SecureElement(FakeSE05x({0x65: CERT_DER}, {0x64: signer}))
    settings = {"credentials": {"key": "se05x:token=0x00000064", "cert": "se05x:token=0x00000065"}}
    saved = creds.port_has_sign_hook
    creds.port_has_sign_hook = lambda: True  # as on a Portenta H7 build
    try:
        kw = creds.load_credentials(settings, se)
    finally:
        creds.port_has_sign_hook = saved
    assert kw["key"] == se05x.reference_key(0x64) and kw["cert"] == CERT_DER
    cb = kw["ecdsa_sign_callback"]
    digest = bytes(range(32))
    # mbedTLS passes the key's scalar and the digest
    assert cb(bytearray(kw["key"][-32:]), bytearray(digest)) == b"\x30\x06\x02\x01\x01\x02\x01\x02"
    assert digests == [digest]
    assert cb(bytearray(KEY_DER[7:39]), bytearray(digest)) is None  # other keys: software


def test_se05x_failures_are_credential_errors():
    fake = FakeSE05x({0x65: CERT_DER, 0x70: b"not a certificate"}, {0x64: lambda d: b""})
    se = se05x.SecureElement(fake)
    d = _dir({"key.der": KEY_DER})

    def load(token):
        return creds.load_credentials(_settings(d, key="key.der", cert=token), se)

    assert "does not exist" in str(raises(CredentialError, load, "se05x:token=0x00000099"))
    assert "DER certificate" in str(raises(CredentialError, load, "se05x:token=0x00000070"))
    assert "is a key" in str(raises(CredentialError, load, "se05x:token=0x00000064"))
    fake.fail_next(1)
    assert "I2C" in str(raises(CredentialError, load, "se05x:token=0x00000065"))
    assert load("se05x:token=0x00000065")["cert"] == CERT_DER  # the bus recovers


def test_fake_se_refuses_reads_past_the_end_and_bad_digests():
    fake = FakeSE05x({0x65: CA_DER}, {0x64: lambda d: b"sig"})
    raises(RuntimeError, fake.read, 0x65, len(CA_DER) + 1)
    raises(ValueError, fake.sign, 0x64, b"short")
    assert fake.sign(0x64, bytes(32)) == b"sig"


def test_the_secure_element_is_created_lazily():
    se = se05x.SecureElement()  # touches nothing
    se05x.set_secure_element(None)
    assert se05x.get_secure_element() is se05x.get_secure_element()
    # only now would a board import the driver (and claim its pins); here there is none
    exc = raises(OSError, se.driver)
    assert "Portenta" in str(exc)


def test_garbage_sources_are_refused():
    for src in (
        b"hello",
        b"",
        bytearray(b"\x00\x01"),
        "-----BEGIN X-----\nAAAA\n-----END X-----\n",
    ):
        raises(CredentialError, creds.load_key, src)
    raises(CredentialError, creds.load_key, 42)
    exc = raises(CredentialError, creds.load_key, KEY_DER[:40])
    assert "corrupt" in str(exc)
    exc = raises(CredentialError, creds.load_cert, CA_DER[:-10])
    assert "not a valid certificate" in str(exc)
    raises(CredentialError, creds.load_ca, [CA_DER, b"\x30\x03\x02\x01\x01"])


def test_tls_context_builds_from_pem_and_paths():
    d = _dir({"key.pem": _pem(KEY_DER, "PRIVATE KEY"), "cert.pem": _pem(CERT_DER, "CERTIFICATE")})
    ctx = creds.tls_context(ca=CA_DER, cert="cert.pem", key=KEY_DER, base_dir=d)
    assert not tlsctx.is_insecure(ctx)
    raises(CredentialError, creds.tls_context, ca=CA_DER, cert="cert.pem", base_dir=d)
    assert tlsctx.is_insecure(creds.tls_context(insecure=True))


def test_tls_context_installs_the_se05x_hook_on_the_native_context():
    se = se05x.SecureElement(FakeSE05x({0x65: CERT_DER}, {0x64: lambda d: b"0"}))
    made = []

    class Native:
        pass

    class Wrapper:  # what tlsctx returns on MicroPython: the native context in _ctx
        _ctx = Native()

    def fake_client_context(**kw):
        made.append(kw)
        return Wrapper()

    saved = creds.port_has_sign_hook, tlsctx.client_context
    creds.port_has_sign_hook = lambda: True  # as on a Portenta H7 build
    tlsctx.client_context = fake_client_context
    try:
        ctx = creds.tls_context(ca=CA_DER, cert="se05x:token=0x65", key="se05x:token=0x64", se=se)
    finally:
        creds.port_has_sign_hook, tlsctx.client_context = saved
    assert made[0]["key"] == se05x.reference_key(0x64) and made[0]["cert"] == CERT_DER
    assert made[0]["cadata"] == [CA_DER]
    hook = ctx._ctx.ecdsa_sign_callback
    assert hook(bytearray(made[0]["key"][-32:]), bytearray(32)) == b"0"


def test_pkcs11_needs_cpython():
    if MICROPYTHON:
        exc = raises(CredentialError, creds.load_key, "pkcs11:token=t;object=k")
        assert "CPython" in str(exc)
        raises(CredentialError, creds.tls_context, CA_DER, "c.der", "pkcs11:object=k")
    else:
        assert creds.load_key("pkcs11:token=t;object=k") == "pkcs11:token=t;object=k"


def test_static_credentials_mint_the_same_pair_forever():
    c = creds.StaticCredentials("device-1", "s3cret-Pw")
    assert isinstance(c, creds.Credentials)
    assert not c.needs_time and c.expires_at is None
    assert c.mint(1700000000) == ("device-1", "s3cret-Pw")
    assert c.mint(0) == ("device-1", "s3cret-Pw") and c.expires_at is None
    assert "s3cret" not in repr(c)
    assert creds.StaticCredentials("only-user").mint(1) == ("only-user", None)
    raises(NotImplementedError, creds.Credentials().mint, 1)


def test_credential_error_is_one_class_everywhere():
    from tether import errors

    assert tlsctx.CredentialError is errors.CredentialError is creds.CredentialError
    assert issubclass(errors.CredentialError, ValueError)


def test_a_certificate_next_to_an_encrypted_key_still_loads():
    both = _pem(KEY_DER, "ENCRYPTED PRIVATE KEY") + _pem(CERT_DER, "CERTIFICATE")
    assert creds.load_cert(both) == CERT_DER
    assert "encrypted" in str(raises(CredentialError, creds.load_key, both))
    legacy = "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: X\n\nAAAA\n"
    legacy += "-----END EC PRIVATE KEY-----\n" + _pem(CERT_DER, "CERTIFICATE")
    assert creds.load_cert(legacy) == CERT_DER
    raises(CredentialError, creds.load_cert, _pem(KEY_DER, "ENCRYPTED PRIVATE KEY"))
