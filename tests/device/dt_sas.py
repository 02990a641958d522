"""tether.hmac and tether.sas on both interpreters: RFC 4231 HMAC-SHA256 vectors, the SAS
vectors of protocols.md §2.2/§2.6 (hub, DPS, Microsoft's group-enrollment derived key) and
SasCredentials as the plan's Credentials contract defines it."""

from harness import raises
from tether import hmac, sas
from tether.credentials import Credentials
from tether.errors import CredentialError
from tether.hal import clock
from tether.hal.fakes import FakeClock

KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  # bytes 0..31
SE = 1700000000
HUB_TOKEN = (
    "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdev1"
    "&sig=i%2BYmMcSSZc4KzBi6ejz3l0iL%2B2sN0CE3q6vSm837h2g%3D&se=1700000000"
)
DPS_TOKEN = (
    "SharedAccessSignature sr=0ne00000000%2Fregistrations%2Fdev1"
    "&sig=oKwZaCJJEhWCnyeJDfYTRmwFtjZFO8MtV0SsABtnTcw%3D&se=1700000000&skn=registration"
)
GROUP_KEY = (
    "8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw=="
)
GROUP_REG = "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6"
GROUP_DERIVED = "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc="


def h(text):
    return bytes.fromhex(text)


# ---------------------------------------------------------------------------- HMAC


def test_hmac_matches_rfc4231_test_cases():
    cases = [
        (  # 1
            b"\x0b" * 20,
            b"Hi There",
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
        ),
        (  # 2: key shorter than the block
            b"Jefe",
            b"what do ya want for nothing?",
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        ),
        (  # 3
            b"\xaa" * 20,
            b"\xdd" * 50,
            "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
        ),
        (  # 4
            h("0102030405060708090a0b0c0d0e0f10111213141516171819"),
            b"\xcd" * 50,
            "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
        ),
        (  # 6: key longer than the block is hashed first
            b"\xaa" * 131,
            b"Test Using Larger Than Block-Size Key - Hash Key First",
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        ),
        (  # 7
            b"\xaa" * 131,
            b"This is a test using a larger than block-size key and a larger than block-size"
            b" data. The key needs to be hashed before being used by the HMAC algorithm.",
            "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
        ),
    ]
    for key, msg, want in cases:
        assert hmac.digest(key, msg).hex() == want, want
        assert hmac.new(key, msg, "sha256").hexdigest() == want


def test_hmac_of_a_block_sized_key_is_not_hashed_first():
    # 64 bytes is used as it is; 65 is hashed. Values from CPython's hmac.
    assert hmac.digest(b"k" * 64, b"m").hex() == (
        "3b7a8d453e76edb519238a515105a57508d0f169f480ebeee120a9e7803289fa"
    )
    assert hmac.digest(b"k" * 65, b"m").hex() == (
        "c2d7d4c2256ddb097409ec0c67e1d58fa1a007fc6932cac0d892a525d08af7cc"
    )


def test_hmac_update_in_pieces_equals_one_call():
    mac = hmac.HMAC(b"Jefe")
    for piece in (b"what do ya ", b"want ", b"for nothing?"):
        mac.update(piece)
    assert mac.digest() == hmac.digest(b"Jefe", b"what do ya want for nothing?")
    assert mac.digest() == mac.digest()  # a second call returns the same digest
    raises(ValueError, mac.update, b"more")


def test_hmac_refuses_other_digests_and_str_keys():
    raises(ValueError, hmac.new, b"k", b"m", "sha1")
    raises(TypeError, hmac.HMAC, "text key")


def test_compare_digest():
    assert hmac.compare_digest(b"abc", b"abc")
    assert not hmac.compare_digest(b"abc", b"abd")
    assert not hmac.compare_digest(b"abc", b"ab")


# ----------------------------------------------------------------------------- SAS


def test_hub_token_matches_the_protocols_vector():
    uri = sas.hub_uri("myhub.azure-devices.net", "dev1")
    assert uri == "myhub.azure-devices.net/devices/dev1"
    assert sas.sas_token(uri, KEY, SE) == HUB_TOKEN
    assert sas.hub_token("myhub.azure-devices.net", "dev1", KEY, expiry=SE) == HUB_TOKEN


def test_dps_token_matches_the_protocols_vector_with_skn_registration():
    assert sas.dps_uri("0ne00000000", "dev1") == "0ne00000000/registrations/dev1"
    assert sas.dps_token("0ne00000000", "dev1", KEY, expiry=SE) == DPS_TOKEN
    assert sas.sas_token("0ne00000000/registrations/dev1", KEY, SE, "registration") == DPS_TOKEN


def test_group_enrollment_derived_key_matches_microsoft_docs():
    assert sas.derive_device_key(GROUP_KEY, GROUP_REG) == GROUP_DERIVED


def test_module_uri_and_policy_name():
    assert sas.hub_uri("h.net", "d", "m") == "h.net/devices/d/modules/m"
    token = sas.sas_token("h.net", KEY, 5, policy="iothubowner")
    assert token.startswith("SharedAccessSignature sr=h.net&sig=")
    assert token.endswith("&se=5&skn=iothubowner")


def test_sr_is_the_encoded_uri_that_was_signed():
    # Spaces, '/' and non-ASCII are all escaped, and the signature changes with the URI.
    a = sas.sas_token("h/devices/dev 1\u00e9", KEY, SE)
    assert a.startswith("SharedAccessSignature sr=h%2Fdevices%2Fdev%201%C3%A9&sig=")
    assert a.split("&sig=")[1] != sas.sas_token("h/devices/dev1", KEY, SE).split("&sig=")[1]


def test_default_expiry_is_unix_time_plus_ttl_on_a_2000_epoch_port():
    c = FakeClock(2000, SE - 3600)  # an esp32-like clock whose time() counts from 2000
    clock.set_clock(c)
    try:
        token = sas.hub_token("myhub.azure-devices.net", "dev1", KEY)
        short = sas.dps_token("0ne00000000", "dev1", KEY, ttl_s=60)
    finally:
        clock.set_clock(None)
    # Unix seconds, not the port's: the clock may tick during the call.
    assert token in (HUB_TOKEN, sas.hub_token("myhub.azure-devices.net", "dev1", KEY, SE + 1))
    se = int(short.split("&se=")[1].split("&")[0])
    assert SE - 3600 + 60 <= se <= SE - 3600 + 61


def test_bad_keys_raise_credential_error_without_the_key():
    for bad in ("not base64!", "AAEC AwQF", "AAECAw=", ""):
        exc = raises(CredentialError, sas.sas_token, "h/devices/d", bad, SE)
        assert bad not in str(exc) or not bad
    raises(CredentialError, sas.derive_device_key, "%%%%", "reg")


# ------------------------------------------------------------------ SasCredentials


def test_sas_credentials_mint_username_token_and_expiry():
    creds = sas.SasCredentials(
        sas.hub_uri("myhub.azure-devices.net", "dev1"), KEY, ttl_s=3600, username="u/1"
    )
    assert isinstance(creds, Credentials)
    assert creds.needs_time is True
    assert creds.expires_at is None
    username, password = creds.mint(SE - 3600)
    assert username == "u/1"
    assert password == HUB_TOKEN
    assert creds.expires_at == SE


def test_sas_credentials_mint_a_new_token_each_time():
    creds = sas.SasCredentials(sas.dps_uri("0ne00000000", "dev1"), KEY, 60, "registration")
    assert creds.mint(SE - 60) == ("", DPS_TOKEN)
    _, later = creds.mint(SE)
    assert later.endswith("&se=%d&skn=registration" % (SE + 60))
    assert creds.expires_at == SE + 60


def test_sas_credentials_check_key_and_ttl_at_construction():
    raises(CredentialError, sas.SasCredentials, "h/devices/d", "@@@@")
    raises(CredentialError, sas.SasCredentials, "h/devices/d", KEY, 0)
    raises(CredentialError, sas.SasCredentials, "h/devices/d", KEY, -5)
    assert KEY not in repr(sas.SasCredentials("h/devices/d", KEY))
