"""tether.csr against cryptography (CPython only).

cryptography loads every CSR we make (DER and PEM), its signature is valid, the subject is
the one asked for in the same order, the public key is the signer's, and the signed part
(CertificationRequestInfo) is byte for byte what cryptography's own CSR builder writes for
the same key and subject.
"""

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tether import csr, keys

DER = ser.Encoding.DER
SPKI = ser.PublicFormat.SubjectPublicKeyInfo
OIDS = {
    "CN": NameOID.COMMON_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "L": NameOID.LOCALITY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "C": NameOID.COUNTRY_NAME,
}
EC_KEY = ec.generate_private_key(ec.SECP256R1())
EC_OURS = keys.load_private_key(
    EC_KEY.private_bytes(DER, ser.PrivateFormat.PKCS8, ser.NoEncryption())
)
RSA_KEY = rsa.generate_private_key(65537, 2048)
RSA_OURS = keys.load_private_key(
    RSA_KEY.private_bytes(DER, ser.PrivateFormat.TraditionalOpenSSL, ser.NoEncryption())
)

# RFC 5280's upper bounds, which cryptography checks on the UTF-8 bytes: 64 for CN, O and OU
# (128 for L and ST). 64 characters can be 256 bytes, so the bytes are bounded too.
text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=64).filter(
    lambda s: len(s.encode("utf-8")) <= 64
)
attribute = st.one_of(
    st.tuples(st.sampled_from(["CN", "O", "OU", "L", "ST"]), text),
    st.tuples(st.just("C"), st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=2, max_size=2)),
)
subjects = st.lists(attribute, min_size=1, max_size=6)


def their_name(subject):
    return x509.Name(
        [x509.RelativeDistinguishedName([x509.NameAttribute(OIDS[a], v)]) for a, v in subject]
    )


def check(request_der, signer, subject, key):
    req = x509.load_der_x509_csr(request_der)
    assert req.is_signature_valid
    assert isinstance(req.signature_hash_algorithm, hashes.SHA256)
    assert req.public_key().public_bytes(DER, SPKI) == signer.public_key_der()
    assert [(a.oid, a.value) for a in req.subject] == [(OIDS[a], v) for a, v in subject]
    builder = x509.CertificateSigningRequestBuilder().subject_name(their_name(subject))
    theirs = builder.sign(key, hashes.SHA256())
    assert req.tbs_certrequest_bytes == theirs.tbs_certrequest_bytes
    return req


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subject=subjects)
def test_cryptography_validates_every_p256_csr(subject):
    check(csr.make(EC_OURS, subject), EC_OURS, subject, EC_KEY)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subject=subjects)
def test_cryptography_validates_rsa_csrs(subject):
    check(csr.make(RSA_OURS, subject), RSA_OURS, subject, RSA_KEY)


def test_astarte_csr_from_a_generated_key_as_pem():
    signer = keys.generate_p256()
    subject = [("CN", "test/2TBn-jNESuuHamE2Zo1anA"), ("O", "Devices")]
    pem = csr.make_pem(signer, subject)
    req = x509.load_pem_x509_csr(pem.encode())
    assert req.is_signature_valid
    assert req.subject.rfc4514_string() == "O=Devices,CN=test/2TBn-jNESuuHamE2Zo1anA"
    assert req.public_key().public_bytes(DER, SPKI) == signer.public_key_der()
    their_key = ser.load_der_private_key(signer.to_der(), None)
    check(req.public_bytes(ser.Encoding.DER), signer, subject, their_key)
