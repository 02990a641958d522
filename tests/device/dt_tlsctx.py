"""tether.tlsctx on both interpreters: what a context accepts, refuses, and how it warns.

The certificates below are a fixed throwaway set (EC P-256 CA and device, a second EC key,
an RSA-1024 device) valid 2020-2120; nothing here connects anywhere. The end-to-end tests
against mosquitto are in tests/test_tls_broker.py.
"""

import io
from binascii import b2a_base64, unhexlify

from harness import raises
from tether import log, tlsctx
from tether.compat import MICROPYTHON
from tether.tlsctx import CredentialError

CA_DER = unhexlify(
    "308201243081caa003020102020101300a06082a8648ce3d0403023010310e300c06035504030c0564742043"
    "413020170d3230303130313030303030305a180f32313230303130313030303030305a3010310e300c060355"
    "04030c0564742043413059301306072a8648ce3d020106082a8648ce3d0301070342000481ad50c05d9eac62"
    "0841ee1dc3fd23fd88be6c0b96a85d4fa8ad30fc51786de5dc646af72430f77de9036c8fe477dee7b7f364cc"
    "57c38782f5669b0d34bec408a3133011300f0603551d130101ff040530030101ff300a06082a8648ce3d0403"
    "020349003046022100eae712bba006430ad254111ffe1e9bf386064f1e6b04198a2776438bcbd2b60d022100"
    "f53a2f309875bd9aa5e3ae64d3e1566251dd91696d8dbd6e25307d88f4e1bf82"
)
CERT_DER = unhexlify(
    "308201233081cba003020102020101300a06082a8648ce3d0403023010310e300c06035504030c0564742043"
    "413020170d3230303130313030303030305a180f32313230303130313030303030305a301431123010060355"
    "04030c0964742d6465766963653059301306072a8648ce3d020106082a8648ce3d030107034200044fd18cbe"
    "fdce73cd944b7fa8eb3e47685819e2cb54fc1c8cc7104591dd692c770916a8d213fb53b2e00ac4f22a900668"
    "6b73ed4de8320534e83055e89588d767a310300e300c0603551d130101ff04023000300a06082a8648ce3d04"
    "0302034700304402203059b58051edb57ede5b9d298ab649ac6e7c1fea6b7f83c6d9c517b0c0893291022042"
    "951bcd0a6da251de5328640ec0c8a2984db5fc17349cdd683686fd69787cba"
)
KEY_DER = unhexlify(
    "30770201010420466162c65f4ec72c2fd082384a392fb548b15aef16ee81cbae4ddd808305a5c5a00a06082a"
    "8648ce3d030107a144034200044fd18cbefdce73cd944b7fa8eb3e47685819e2cb54fc1c8cc7104591dd692c"
    "770916a8d213fb53b2e00ac4f22a9006686b73ed4de8320534e83055e89588d767"
)
KEY_PK8_DER = unhexlify(
    "308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b0201010420466162c65f4ec72c"
    "2fd082384a392fb548b15aef16ee81cbae4ddd808305a5c5a144034200044fd18cbefdce73cd944b7fa8eb3e"
    "47685819e2cb54fc1c8cc7104591dd692c770916a8d213fb53b2e00ac4f22a9006686b73ed4de8320534e830"
    "55e89588d767"
)
OTHER_KEY_DER = unhexlify(
    "307702010104201c20346a89574c8003b6458505a3384eb15c06e74dbe08e8d52e36fa15c7a54ea00a06082a"
    "8648ce3d030107a14403420004ac4ecb6fb439073181966040fec45ddbaa14e9af33c9dd358d91f7909c7f73"
    "5d0d7e088e3be44180b1ddd1f253af6fd4c59a247474ab7f90ad90af81433d6a68"
)
RSA_CERT_DER = unhexlify(
    "308201683082010fa003020102020101300a06082a8648ce3d0403023010310e300c06035504030c05647420"
    "43413020170d3230303130313030303030305a180f32313230303130313030303030305a3011310f300d0603"
    "5504030c0664742d72736130819f300d06092a864886f70d010101050003818d0030818902818100effec81d"
    "20cc73227e8ffc1658230245a845d42d8f37b9dba5d4063c4fe09d625f524efbf17b8d4e9e4cb98f09419a36"
    "a9aaaff47ab492bb351ee63abb81f620c755982572fee9b3b8d29b6cdcb92e056112fe1f06d8ae8654bf62d3"
    "318ddface2c3d69138588e7ea0fe7f66cb455d5b5d9268740c93bdde2f1c4da7abfe58910203010001a31030"
    "0e300c0603551d130101ff04023000300a06082a8648ce3d040302034700304402204e82753db649c80e4c64"
    "f830089cfdddd5edeb91566c2df68ead9000a92a801f0220425c4c2b2f353554457fb64431faeda08b523654"
    "a223f0e4476119b2da657a23"
)
RSA_KEY_DER = unhexlify(
    "3082025d02010002818100effec81d20cc73227e8ffc1658230245a845d42d8f37b9dba5d4063c4fe09d625f"
    "524efbf17b8d4e9e4cb98f09419a36a9aaaff47ab492bb351ee63abb81f620c755982572fee9b3b8d29b6cdc"
    "b92e056112fe1f06d8ae8654bf62d3318ddface2c3d69138588e7ea0fe7f66cb455d5b5d9268740c93bdde2f"
    "1c4da7abfe589102030100010281804c04e13050ce51fdf026fd8bba594483f9fc3c6c3dfc41d3f0600ba599"
    "0ba5ee9e10fd51d2b8f7169b0fe48b093c8d739924a6dd82eca5b9c4e6c7b87ce27aaa6451d58b6371540abd"
    "4d9048da59c53c02f894bbeb792a4bb2d82225b23ba17335533fae99896688033716d0e087b10392b12be86d"
    "d29e3f51bf75d1dd4df7ad024100f9260fdb9804fc284247b99d8bc965cfa584a4d707bef40e67e154c3f548"
    "0e5ceea2765a61f68b2d9c2fe57f805496a0b4b5435d7c700e4e9201ca1482069c0b024100f69848356be17a"
    "db38e0f6eac58d7d22a70a6665748006729572aaffa7ca99a5cca98edb0f5b50dae19f61aeac18ec2d9c1d9f"
    "1b1ac34921d59313b1e7f4e3530240050c7065d2bec71d49ba8a5856eccdd3575748bfd2b85bd9aee1320686"
    "81df48a2cd47f8ace3820e7a8bbdeac77eef4e725af9f27b030a472d4e3bfa0e6873e1024100e011535ba761"
    "451f39b9c0e3670abfafe314a222820f6acc675bc0617977b0d164fc95201bfe1fa423eb8cf908cbc49f5501"
    "dd76e58499493325e7797a899c9d02410087d45fe2fe7962f2dfa08f097b246ce1b800c716c88b58f3a63d41"
    "38fb641284abba9fbf66efad2677f78188aeeede0a97b7a199cf63e3ce7fa1d7d1ce43a866"
)


def _pem(der, label):
    b64 = b2a_base64(der).decode().strip()
    body = "\n".join(b64[i : i + 64] for i in range(0, len(b64), 64))
    return ("-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label, body, label)).encode()


KEY_PEM = _pem(KEY_DER, "EC PRIVATE KEY")
CERT_PEM = _pem(CERT_DER, "CERTIFICATE")


def _capture():
    buf = io.StringIO()
    log.basicConfig(level=log.DEBUG, stream=buf)
    return buf


def _restore():
    log.basicConfig(level=log.INFO, stream=None)


def _verify_mode(ctx):
    if MICROPYTHON:
        import tls

        return ctx._ctx.verify_mode == tls.CERT_REQUIRED
    import ssl

    return ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname


def test_der_ca_cert_and_key_make_a_verifying_context():
    ctx = tlsctx.client_context(cadata=CA_DER, cert=CERT_DER, key=KEY_DER)
    assert _verify_mode(ctx)
    assert not tlsctx.is_insecure(ctx)


def test_ca_only_context_verifies_too():
    assert _verify_mode(tlsctx.client_context(cadata=CA_DER))


def test_a_list_of_cas_is_accepted():
    ctx = tlsctx.client_context(cadata=[CA_DER, CERT_DER], cert=CERT_DER, key=KEY_DER)
    assert _verify_mode(ctx)


def test_bytearray_and_memoryview_credentials_are_accepted():
    ctx = tlsctx.client_context(
        cadata=bytearray(CA_DER), cert=memoryview(CERT_DER), key=bytearray(KEY_DER)
    )
    assert _verify_mode(ctx)


def test_pkcs8_key_is_accepted_and_checked():
    tlsctx.client_context(cadata=CA_DER, cert=CERT_DER, key=KEY_PK8_DER)
    exc = raises(CredentialError, tlsctx.client_context, CA_DER, RSA_CERT_DER, KEY_PK8_DER)
    assert "does not match" in str(exc)


def test_rsa_key_pair_is_checked():
    # check_pair directly: OpenSSL's default security level refuses RSA-1024 keys anyway.
    tlsctx.check_pair(RSA_CERT_DER, RSA_KEY_DER)
    exc = raises(CredentialError, tlsctx.check_pair, CERT_DER, RSA_KEY_DER)
    assert "does not match" in str(exc)


def test_key_of_another_certificate_is_refused():
    exc = raises(CredentialError, tlsctx.client_context, CA_DER, CERT_DER, OTHER_KEY_DER)
    assert "key does not match the certificate" in str(exc)


def test_pem_key_and_certificate_make_a_context_on_both_interpreters():
    # the armour is decoded in Python: no openssl needed, on a board either
    assert _verify_mode(tlsctx.client_context(cadata=CA_DER, cert=CERT_PEM, key=KEY_PEM))
    assert _verify_mode(tlsctx.client_context(cadata=CA_DER, cert=CERT_DER, key=KEY_PEM))
    pk8 = _pem(KEY_PK8_DER, "PRIVATE KEY").decode()  # str works as well as bytes
    assert _verify_mode(tlsctx.client_context(cadata=CA_DER, cert=CERT_PEM, key=pk8))
    assert tlsctx.pem_to_der(KEY_PEM, "key") == [KEY_DER]
    assert tlsctx.pem_to_der(_pem(RSA_KEY_DER, "RSA PRIVATE KEY"), "key") == [RSA_KEY_DER]


def test_pem_key_with_wrong_partner_is_refused():
    exc = raises(CredentialError, tlsctx.client_context, CA_DER, RSA_CERT_DER, KEY_PEM)
    assert "does not match" in str(exc)


def test_encrypted_pem_key_is_refused_with_the_command_that_decrypts_it():
    legacy = (
        b"-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n"
        b"DEK-Info: AES-128-CBC,00112233445566778899AABBCCDDEEFF\n\nAAAA\n"
        b"-----END EC PRIVATE KEY-----\n"
    )
    for pem in (_pem(KEY_PK8_DER, "ENCRYPTED PRIVATE KEY"), legacy):
        msg = str(raises(CredentialError, tlsctx.client_context, CA_DER, CERT_DER, pem))
        assert "encrypted" in msg and "openssl pkey -in key.pem -out key-plain.pem" in msg, msg


def test_pem_that_cannot_be_read_gets_the_conversion_command():
    dsa = _pem(KEY_DER, "DSA PRIVATE KEY")
    msg = str(raises(CredentialError, tlsctx.client_context, CA_DER, CERT_DER, dsa))
    assert "DSA PRIVATE KEY" in msg and "openssl pkey -in key.pem -outform DER" in msg, msg
    trusted = _pem(CERT_DER, "TRUSTED CERTIFICATE")
    msg = str(raises(CredentialError, tlsctx.client_context, trusted))
    assert "openssl x509 -in cert.pem -outform DER -out cert.der" in msg, msg
    ssh = _pem(b"openssh-key-v1", "OPENSSH PRIVATE KEY")
    msg = str(raises(CredentialError, tlsctx.client_context, CA_DER, CERT_DER, ssh))
    assert "ssh-keygen -p -m PKCS8 -f key.pem" in msg, msg


def test_broken_pem_armour_is_a_credential_error():
    for bad in (
        b"-----BEGIN CERTIFICATE-----\nnot closed\n",
        b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END PRIVATE KEY-----\n",
    ):
        exc = raises(CredentialError, tlsctx.client_context, bad)
        assert "PEM" in str(exc), exc
    # armour around something that is not a certificate
    exc = raises(
        CredentialError, tlsctx.client_context, _pem(b"\x30\x03\x02\x01\x01", "CERTIFICATE")
    )
    assert "CA certificate" in str(exc)


def test_corrupt_key_is_refused():
    exc = raises(CredentialError, tlsctx.client_context, CA_DER, CERT_DER, KEY_DER[:40])
    assert "key is corrupt" in str(exc)
    exc = raises(CredentialError, tlsctx.client_context, CA_DER, CERT_DER, b"\x00" * 121)
    assert "key is corrupt" in str(exc)


def test_every_truncation_of_key_or_cert_is_a_credential_error():
    for n in range(len(KEY_DER)):
        raises(CredentialError, tlsctx.client_context, CA_DER, CERT_DER, KEY_DER[:n])
    for n in range(0, len(CERT_DER), 7):
        raises(CredentialError, tlsctx.client_context, CA_DER, CERT_DER[:n], KEY_DER)


def test_flipped_key_bytes_raise_nothing_but_credential_error():
    for i in range(len(KEY_DER)):
        bad = bytearray(KEY_DER)
        bad[i] ^= 0xFF
        try:
            tlsctx.client_context(cadata=CA_DER, cert=CERT_DER, key=bytes(bad))
        except CredentialError:
            pass


def test_corrupt_ca_is_refused():
    exc = raises(CredentialError, tlsctx.client_context, CA_DER[:-10])
    assert "CA certificate" in str(exc)
    exc = raises(CredentialError, tlsctx.client_context, [CA_DER, b"\x30\x03\x02\x01\x01"])
    assert "CA certificate" in str(exc)


def test_cert_without_key_is_refused():
    exc = raises(CredentialError, tlsctx.client_context, CA_DER, CERT_DER)
    assert "both or neither" in str(exc)
    raises(CredentialError, tlsctx.client_context, CA_DER, None, KEY_DER)


def test_file_name_instead_of_bytes_is_refused():
    exc = raises(CredentialError, tlsctx.client_context, CA_DER, "cert.der", KEY_DER)
    assert "open(path, 'rb').read()" in str(exc)


def test_no_ca_is_refused_on_micropython_and_means_system_store_on_cpython():
    if MICROPYTHON:
        exc = raises(CredentialError, tlsctx.client_context)
        assert "no CA certificate" in str(exc)
    else:
        assert _verify_mode(tlsctx.client_context())


def test_token_references_are_sent_to_tether_creds():
    # tlsctx sits below creds, hsm and the SE05x: it never imports them (no import cycle)
    for key in ("pkcs11:id=%01", "se05x:token=0x00000064"):
        exc = raises(CredentialError, tlsctx.client_context, CA_DER, CERT_DER, key)
        assert "tether.creds.tls_context" in str(exc), exc


def _wrap(ctx, hostname):
    if MICROPYTHON:
        import socket

        s = socket.socket()
        try:
            ctx.wrap_socket(s, do_handshake_on_connect=False, server_hostname=hostname)
        finally:
            s.close()
    else:
        import ssl

        ctx.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname=hostname)


def test_insecure_context_warns_at_every_connection():
    ctx = tlsctx.client_context(insecure=True)
    assert tlsctx.is_insecure(ctx)
    buf = _capture()
    try:
        _wrap(ctx, "broker.example")
        _wrap(ctx, "broker.example")
    finally:
        _restore()
    lines = [ln for ln in buf.getvalue().splitlines() if ln.startswith("WARNING:tls:")]
    assert len(lines) == 2, buf.getvalue()
    assert "verification is OFF" in lines[0] and "broker.example" in lines[0]


def test_insecure_context_does_not_verify():
    ctx = tlsctx.client_context(cert=CERT_DER, key=KEY_DER, insecure=True)
    if MICROPYTHON:
        import tls

        assert ctx._ctx.verify_mode == tls.CERT_NONE
    else:
        import ssl

        assert ctx.verify_mode == ssl.CERT_NONE and not ctx.check_hostname


def test_verifying_context_wraps_silently_and_warn_if_insecure_says_no():
    ctx = tlsctx.client_context(cadata=CA_DER)
    buf = _capture()
    try:
        _wrap(ctx, "broker.example")
        assert tlsctx.warn_if_insecure(ctx, "broker.example") is False
        assert tlsctx.warn_if_insecure(True, "broker.example") is True
    finally:
        _restore()
    assert buf.getvalue().count("WARNING") == 1, buf.getvalue()


def test_explain_names_the_cause_of_each_handshake_failure():
    cases = (
        ("The certificate validity has expired", "expired"),
        ("certificate verify failed: certificate has expired", "expired"),
        ("The certificate validity starts in the future", "not yet valid"),
        ("certificate verify failed: certificate is not yet valid", "not yet valid"),
        ("The certificate Common Name (CN) does not match with the expected CN", "host name"),
        ("Hostname mismatch, certificate is not valid for 'x'", "host name"),
        ("The certificate is not correctly signed by the trusted CA", "trusted CA"),
        ("unable to get local issuer certificate", "trusted CA"),
        ("[SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca", "does not trust the CA"),
        ("(-30592, 'MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE')", "TLS 1.2 only"),
        ("SSL - A fatal alert message was received from our peer", "client certificate"),
    )
    for text, want in cases:
        got = tlsctx.explain(ValueError(text))
        assert got is not None and want in got, (text, got)
    assert tlsctx.explain(OSError(104)) is None
    assert "refused the client certificate" in tlsctx.explain(OSError(104), True)
    assert "refused the client certificate" in tlsctx.explain("write failed: OSError(32,)", True)
    assert "has expired" in tlsctx.explain("certificate has expired", True)


def test_mqtt_client_never_passes_ssl_true_on():
    # asyncio.open_connection(ssl=True) verifies nothing on MicroPython: the client swaps it
    # for a verifying context, which on MicroPython needs a CA and says so.
    from tether.mqtt import MQTTClient

    if MICROPYTHON:
        exc = raises(CredentialError, MQTTClient, "id", "broker.example", 8883, ssl=True)
        assert "no CA certificate" in str(exc)
    else:
        c = MQTTClient("id", "broker.example", 8883, ssl=True)
        assert _verify_mode(c._ssl)


def test_micropython_context_turns_nagle_off_before_the_handshake():
    ctx = tlsctx.client_context(cadata=CA_DER, cert=CERT_DER, key=KEY_DER)
    if not MICROPYTHON:  # CPython's asyncio sets TCP_NODELAY on every connection itself
        import ssl

        assert type(ctx) is ssl.SSLContext
        return
    import socket

    seen = []
    real = tlsctx._nodelay
    tlsctx._nodelay = lambda sock: seen.append(sock)
    s = socket.socket()
    try:
        ctx.wrap_socket(s, do_handshake_on_connect=False, server_hostname="broker.example")
    finally:
        tlsctx._nodelay = real
        s.close()
    assert seen == [s]
    s = socket.socket()
    try:
        assert tlsctx._nodelay(s) is True  # the unix port takes Linux's option numbers
    finally:
        s.close()


def test_pem_ca_bundle_trusts_every_root():
    bundle = CERT_PEM + b"# comment between blocks\n" + _pem(CA_DER, "CERTIFICATE")
    assert tlsctx.pem_to_der(bundle, "ca") == [CERT_DER, CA_DER]
    ctx = tlsctx.client_context(cadata=bundle)
    assert _verify_mode(ctx)
    if not MICROPYTHON:  # mbedTLS has no count to ask; CPython's store says both went in
        assert ctx.cert_store_stats()["x509"] == 2


def test_cert_spki_is_the_public_key_info_of_the_certificate():
    spki = tlsctx.cert_spki(CERT_DER)
    assert spki[:2] == b"\x30\x59" and len(spki) == 91 and spki in CERT_DER
    assert spki.endswith(KEY_DER[-65:])  # the key's public point
    raises(CredentialError, tlsctx.cert_spki, CERT_DER[:50])
