"""tether.signer: the Signer interface, the SE05x signer (on the fake), load_signer dispatch.

The SE05x fake returns fixed DER signatures made beforehand by the fixture key of dt_creds
over SHA-256(MESSAGE), so both interpreters check the same bytes; on CPython `cryptography`
verifies them with the public key the signer reports (tests/test_tls_signer.py signs live).
"""

import hashlib
from binascii import unhexlify

from dt_creds import CA_DER, CERT_DER, KEY_DER, _dir, _pem
from harness import raises
from tether import creds, signer
from tether.compat import MICROPYTHON
from tether.errors import CredentialError
from tether.hal import se05x
from tether.hal.fake_se05x import FakeSE05x

MESSAGE = b"tether signer test"
# r has its top bit set (DER pads it with 00); s is 31 bytes (raw form pads it to 32)
SIG_PAD = unhexlify(
    "3045022100f3158a644bb9dd1ca0eb9a1239796037325b09e47378be464b403b7ced9673ad02204d65e208"
    "7fad5f4642821ea823c67ce85fd55a06c431c22835339f6661ba3f91"
)
SIG_SHORT = unhexlify(
    "3044022100c012f2e2b60d3aa1001fa3d8a44fe5edcdf78061841bf560a09b7f779fea6723021f68600dbe"
    "77288d0a84196507d2edf13a47ab75ffe84ae87324b8cba1ab6309"
)


def _se(sig, seen=None):
    def sign(digest):
        if seen is not None:
            seen.append(digest)
        return sig

    return se05x.SecureElement(FakeSE05x({0x65: CERT_DER + b"\xff" * 40}, {0x64: sign}))


def _verify(spki, raw, message=MESSAGE):
    """On CPython, cryptography checks the raw R||S against the public key."""
    if MICROPYTHON:
        return
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, utils
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    pub = load_der_public_key(spki)
    pub.verify(utils.encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))


def test_ecdsa_raw_pads_and_strips_to_64_bytes():
    raw = signer.ecdsa_raw(SIG_PAD)
    assert len(raw) == 64 and raw[:32] == SIG_PAD[5:37] and raw[32:] == SIG_PAD[39:]
    raw = signer.ecdsa_raw(SIG_SHORT)
    assert len(raw) == 64 and raw[32] == 0 and raw[33:] == SIG_SHORT[-31:]


def test_ecdsa_raw_refuses_anything_else():
    for bad in (
        b"",
        SIG_PAD[:-1],
        b"\x30\x03\x02\x01\x01",  # one integer
        b"\x30\x06\x02\x01\x01\x04\x01\x02",  # an octet string
        b"\x30\x06\x02\x01\x81\x02\x01\x01",  # negative r
        b"\x30\x26\x02\x21\x01" + bytes(32) + b"\x02\x01\x01",  # r of 33 bytes
    ):
        raises(CredentialError, signer.ecdsa_raw, bad)


def test_se05x_signer_signs_sha256_of_the_message_on_the_chip():
    seen = []
    s = signer.SE05xSigner("se05x:token=0x00000064", se=_se(SIG_PAD, seen), cert=CERT_DER)
    assert isinstance(s, signer.Signer) and s.algorithm == "ES256" and s.oid == 0x64
    raw = s.sign(MESSAGE)
    assert seen == [hashlib.sha256(MESSAGE).digest()]
    assert raw == signer.ecdsa_raw(SIG_PAD)
    _verify(s.public_key_der(), raw)


def test_se05x_signer_live_signatures_verify_on_cpython():
    if MICROPYTHON:
        return  # the unix port has no EC arithmetic: tests/test_firmware_se05x.py signs there
    from tether.hal.fake_se05x import LocalSigner

    fake = FakeSE05x({0x65: CERT_DER}, {0x64: LocalSigner(KEY_DER)})
    s = signer.SE05xSigner(0x64, se=se05x.SecureElement(fake), cert="se05x:token=0x65")
    for i in range(20):  # random k each time: R and S of every length get through
        msg = MESSAGE + bytes([i]) * i
        raw = s.sign(msg)
        assert len(raw) == 64
        _verify(s.public_key_der(), raw, msg)


def test_se05x_signer_public_key_comes_from_its_certificate():
    se = _se(SIG_SHORT)
    s = signer.SE05xSigner(0x64, se=se, cert="se05x:token=0x00000065")
    spki = s.public_key_der()
    assert spki in CERT_DER and spki.endswith(KEY_DER[-65:])
    reads = se.driver().commands
    assert s.public_key_der() == spki and se.driver().commands == reads  # read once
    _verify(spki, s.sign(MESSAGE))
    exc = raises(CredentialError, signer.SE05xSigner(0x64, se=se).public_key_der)
    assert "cert=" in str(exc)


def test_se05x_signer_failures():
    se = _se(SIG_PAD)
    exc = raises(CredentialError, signer.SE05xSigner(0x99, se=se).sign, MESSAGE)
    assert "0x00000099" in str(exc) and "doesn't exist" in str(exc)
    se.driver().fail_next(1)
    raises(OSError, signer.SE05xSigner(0x64, se=se).sign, MESSAGE)  # I2C: worth a retry
    assert len(signer.SE05xSigner(0x64, se=se).sign(MESSAGE)) == 64  # the bus recovers
    raises(CredentialError, signer.SE05xSigner(0x64, se=_se(b"\x30\x00")).sign, MESSAGE)
    for bad in ("key.der", "se05x:0x64", "se05x:token=0xZZ"):
        raises(CredentialError, signer.SE05xSigner, bad, se)


def test_load_signer_dispatches_on_the_source():
    se = _se(SIG_PAD)
    s = creds.load_signer("se05x:token=0x00000064", se=se, cert=CERT_DER)
    assert isinstance(s, signer.SE05xSigner) and len(s.sign(MESSAGE)) == 64
    if MICROPYTHON:
        exc = raises(CredentialError, creds.load_signer, "pkcs11:token=t;object=k")
        assert "CPython" in str(exc)
    raises(CredentialError, creds.load_signer, b"garbage")
    exc = raises(CredentialError, creds.load_signer, _pem(KEY_DER, "ENCRYPTED PRIVATE KEY"))
    assert "encrypted" in str(exc)


def test_load_signer_gives_a_software_key_for_files():
    try:
        import tether.keys  # noqa: F401
        import tether.p256  # noqa: F401
    except ImportError:
        return  # helper b3's modules are not in this tree yet
    d = _dir({"key.pem": _pem(KEY_DER, "EC PRIVATE KEY")})
    s = creds.load_signer("key.pem", base_dir=d)
    assert s.algorithm == "ES256"
    assert (
        s.public_key_der()
        == signer.SE05xSigner(0x64, se=_se(SIG_PAD), cert=CERT_DER).public_key_der()
    )
    _verify(s.public_key_der(), s.sign(MESSAGE))


def test_base_signer_is_abstract():
    raises(NotImplementedError, signer.Signer().sign, b"x")
    raises(NotImplementedError, signer.Signer().public_key_der)
    assert CA_DER  # the shared fixtures load
