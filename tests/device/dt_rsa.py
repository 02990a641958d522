"""tether.rsa on both interpreters: a PKCS#1 v1.5 SHA-256 known answer made with
`cryptography`, the signature's length and self-check, and the key checks."""

from binascii import unhexlify

from harness import raises
from tether import rsa

# RSA-2048 key made once with `cryptography` (rsa.generate_private_key(65537, 2048)).
N = int(
    "9acf701f7aadb51023270f314af39f9b7997eb265a2f242f655ca7b1314f32e808055bcc519b5d63e4d13138"
    "27d345b1b72c55333538192c56a77075ebaeb0af5c276e68dbbb70a0dc2bbc8abeddfa9da568cb17f3236213"
    "e578535f73314e0209003048dcd9f8ffa1cae8a66fd70a222d9bcae083b73bfd37d5c4997c73d38d72a9cf43"
    "1f91c50f5e19d43c9d8506039ffb3f612fae2f9b394aeea197e9d4bbe4bc68e5d65445a258c7838d4b5d2617"
    "ec227b56548f477a528e3be7c2585f4acd73bdf0db9aa1be509d12bfd18c7a7177ae0720e4a0185d3c6f717f"
    "9c557c205433b87cfc4dd3fb69a1df3fd6a218181560c498ac94046f6cd35930249e8fc7",
    16,
)
D = int(
    "1fb2d6bdb4f5bfc22623b480ab5d00ac9d2129737f53d7c35645edc9e26d40473283a6604af5704528d6bff5"
    "447252faf571f339baa0c06065644d2abe7c3b5af9986c8b1bffc6f80f836b7fb6f88016ddec7c03069ac688"
    "bc6898834e0e25a2eea4e00af1ba9cecc7c8fc70a4c5de88843e3a3454f73e594fd3e4059cbad457c51848fb"
    "7c187752c7e92da26b97319b9b7f308938f5dfd1ed5acece2a1b582f588bf2428dc9e471e91773d4c220f158"
    "3a5b7ca36b4861e0764de2f3d1c48df9c31a823c8ec1c1dda105abbe08d0e8741a17bca43b0a902dc4c08aa2"
    "e6e632dc295eb091d0276939a83b6c991914fba8a94ab5b89b222cab53c407cb75c8a2d",
    16,
)
P = int(
    "daa4415cf713040d884312cf13577a0cc70808d127a9f4d93994af438e8942b74166f544384dc0a5b111c57d"
    "9d4858ecacae67782e92118e9d37e11748b13138e77cae00552ad43ec20dbe7750b0401c502bcea0e0b65ce3"
    "3e0f1f5fb7e01a056f6fe196d153b8b80981aecd44ca176861b25a51799933341dcfb2b6b579d4c5",
    16,
)
Q = int(
    "b543187ebd5023f69636ad2ee9af7a350c63c484ec3a16a7024ec139d955c84c6a48a3ac5c50b5b8aa56e75e"
    "e58e3fbb4741f25fb8cb9a6b14442388cec697ed3fe5af2315612b8d7b4465178c634512a800082ab5569418"
    "50f19fbdb32466ca894afd9facec2187d79e9de11bd8a511c55211f0ec72b7941f9fa60e86b8931b",
    16,
)
DP = int(
    "91f4f1058493173389716d4efb947c0fa7967f7c50c42e860ce06b17e8414d5e54b4ccaadc035bc5c0ad226f"
    "b6dda32f6c1f89473b9f9b44df437c6a34c6c51b3dbd87d30507f0646cdb0bf94ece3a1e2c8ef20387bf75c6"
    "e598e6d2d9472b57d18a98c83bb96e28bd7feb1771029019c88e6da8d24a295a73444203a2a65019",
    16,
)
DQ = int(
    "77a8d382d7771046b8e35f7098d43ed8c6551666a98baf68911d6c71c407dd3294f75f1569dbde1b0a585465"
    "512596ed0b1d7de3b31ab5d5fa8b00ea4f96cab4d479cc245cf8c8c79d9889240289860fcad83a8bf72a3099"
    "dcd5a59e95a47237426b3f032a24b7fdf559c0dfda822a7690cc9d0b6f0c4c247cbbe7e3af0c2a1",
    16,
)
QINV = int(
    "37171223e68418e3a4d6cf72868103963845f043fb54ef94f0bc213ee2dc98168d74e5304b9b02353e14b3ba"
    "663e0a5201dbec9d4ab82182b2cb4046deb7ac36cbc887460ce8cfb679f7a61173b18872ab3aa306e6d1dff4"
    "4575a701cf125c87de5fa92e74bd922d2cb41ef9bc511748ab8b50a2f30cd2266335f3d1c35d3d97",
    16,
)
E = 65537
MESSAGE = b"tether RS256 known answer"
# cryptography: key.sign(MESSAGE, padding.PKCS1v15(), hashes.SHA256())
SIGNATURE = unhexlify(
    "286c51b69d03cecb232979e17b494dca48c52d2e4aa46c7510e58236bf4185c41e1a1a6fa8948a54ebca32b3"
    "f82c2e52156ffa80bd521303713d271bdcce785d1a358e22fc00c84a06a4d679d0a8cf8a984a8da43f25e5ab"
    "0bc78ba9bf7e60572e8f4138f93193e35580c513fcc46129309c6eafebaa99b93666773efa0c026ed14a7fdc"
    "4affad45b9316e77831b61314eddcbc368c52ef2dc07d44be198e4d95f51fa2c04c7d4eab18b05edf37dfa32"
    "87a51707d94230199b229bc36382e8522aa11730533528377e585bbdb5aa2d9cd441c4e28b0ccb8f205bdc60"
    "ae51b10d19686d659726f28b621097c4049929f2d1cec61a86b3fd26609b677b4be82a98"
)


def key():
    return rsa.RSAPrivate(N, E, D, P, Q, DP, DQ, QINV)


def test_signature_matches_the_cryptography_known_answer():
    assert key().sign_pkcs1_sha256(MESSAGE) == SIGNATURE


def test_signature_is_exactly_the_modulus_size():
    k = key()
    assert k.size == 256
    # A message whose signature has leading zero bytes would still be 256 bytes; check the
    # padding keeps shorter integers at full length by signing several messages.
    for i in range(3):
        sig = k.sign_pkcs1_sha256(b"msg %d" % i)
        assert len(sig) == 256
        assert rsa.verify_pkcs1_sha256(N, E, b"msg %d" % i, sig)


def test_sign_digest_is_the_same_as_sign_message():
    import hashlib

    digest = hashlib.sha256(MESSAGE).digest()
    assert key().sign_digest_pkcs1(digest) == SIGNATURE


def test_encoded_message_has_the_pkcs1_layout():
    # s^e mod n recovers EM = 00 01 FF.. 00 DigestInfo(SHA-256) H (protocols.md 3.2)
    import hashlib

    em = pow(int.from_bytes(SIGNATURE, "big"), E, N).to_bytes(256, "big")
    prefix = unhexlify("3031300d060960864801650304020105000420")
    assert em[:2] == b"\x00\x01"
    assert em[2:-52] == b"\xff" * (256 - 3 - 19 - 32)
    assert em[-52:-51] == b"\x00"
    assert em[-51:-32] == prefix
    assert em[-32:] == hashlib.sha256(MESSAGE).digest()


def test_verify_rejects_another_message_or_a_changed_signature():
    assert rsa.verify_pkcs1_sha256(N, E, MESSAGE, SIGNATURE)
    assert not rsa.verify_pkcs1_sha256(N, E, MESSAGE + b"!", SIGNATURE)
    bad = bytearray(SIGNATURE)
    bad[100] ^= 1
    assert not rsa.verify_pkcs1_sha256(N, E, MESSAGE, bytes(bad))
    assert not rsa.verify_pkcs1_sha256(N, E, MESSAGE, SIGNATURE[1:])


def test_a_wrong_crt_part_is_caught_before_a_signature_leaves():
    # A CRT signature with one faulty half reveals p (gcd(s^e - m, n)); the self-check
    # must refuse it. A wrong dp stands in for a glitch during the p half.
    for args in (
        (N, E, D, P, Q, DP ^ 2, DQ, QINV),
        (N, E, D, P, Q, DP, DQ + 1, QINV),
        (N, E, D, P, Q, DP, DQ, QINV + 1),
    ):
        exc = raises(ValueError, rsa.RSAPrivate(*args).sign_pkcs1_sha256, MESSAGE)
        assert "check" in str(exc)


def test_inconsistent_or_tiny_keys_are_refused():
    raises(ValueError, rsa.RSAPrivate, N + 2, E, D, P, Q, DP, DQ, QINV)
    raises(ValueError, rsa.RSAPrivate, N, 2, D, P, Q, DP, DQ, QINV)
    # 61 * 53: a valid toy key, far too small to hold the 51-byte DigestInfo + hash
    raises(ValueError, rsa.RSAPrivate, 3233, 17, 413, 61, 53, 53, 49, 38)


def test_digest_must_be_32_bytes():
    raises(ValueError, key().sign_digest_pkcs1, b"\x00" * 31)


def test_byte_size():
    assert rsa.byte_size(1) == 1
    assert rsa.byte_size(255) == 1
    assert rsa.byte_size(256) == 2
    assert rsa.byte_size(N) == 256
    assert rsa.byte_size(N >> 1) == 256
    assert rsa.byte_size(N >> 8) == 255


def test_window_pow_matches_builtin_pow():
    # The sliding window replaces pow() on MicroPython; check it against pow() everywhere.
    m = int.from_bytes(MESSAGE * 4, "big")
    for e in (0, 1, 2, 3, 31, 32, 33, 0x10001, DP, DQ, (1 << 200) - 1, 1 << 200):
        assert rsa._window_pow(m, e, P) == pow(m, e, P), e
