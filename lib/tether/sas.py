"""Azure shared access signature (SAS) tokens for IoT Hub and DPS (protocols.md §2.2, §2.6).

    SharedAccessSignature sr={sr}&sig={quote(sig)}&se={se}[&skn={policy}]
        sr = quote(uri), sig = base64(HMAC-SHA256(b64decode(key), sr + "\\n" + se))

    >>> sas_token("myhub.azure-devices.net/devices/dev1",
    ...           "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", 1700000000)
    'SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdev1&sig=i%2BYmMcSSZc4Kz
    Bi6ejz3l0iL%2B2sN0CE3q6vSm837h2g%3D&se=1700000000'   (one line)

The resource URI is percent-encoded with nothing safe (`/` -> `%2F`, upper-case escapes), as
azure-iot-device 2.14 does, and the `sr` sent is exactly the string signed. `se` is Unix
seconds, whatever the port's own epoch: "now" comes from tether.hal.clock.unix_time().
Keys are the base64 text the portal shows; a key that is not valid base64 raises
CredentialError without the key in the message.
"""

from tether import encoding
from tether.credentials import Credentials
from tether.errors import CredentialError
from tether.hmac import digest as _hmac

DEFAULT_TTL_S = 3600  # the Azure SDKs' default token lifetime
DPS_POLICY = "registration"


def decode_key(key_b64, what="SAS key"):
    """The raw bytes of a base64 key; CredentialError (never echoing the key) if malformed."""
    try:
        key = encoding.b64decode(key_b64)
    except (ValueError, TypeError):
        raise CredentialError(
            "%s is not valid base64: copy the primary key from the portal unchanged" % what
        )
    if not key:
        raise CredentialError("%s is empty" % what)
    return key


def hub_uri(host, device_id, module_id=None):
    """`{host}/devices/{device_id}[/modules/{module_id}]`, the IoT Hub resource URI."""
    if module_id:
        return "%s/devices/%s/modules/%s" % (host, device_id, module_id)
    return "%s/devices/%s" % (host, device_id)


def dps_uri(id_scope, registration_id):
    """`{id_scope}/registrations/{registration_id}`, the DPS resource URI."""
    return "%s/registrations/%s" % (id_scope, registration_id)


def _token(sr, key, expiry, policy):
    # sr: the URI already percent-encoded (SasCredentials encodes it once).
    expiry = str(int(expiry))
    sig = encoding.b64encode(_hmac(key, (sr + "\n" + expiry).encode()))
    token = "SharedAccessSignature sr=" + sr + "&sig=" + encoding.quote(sig, safe="")
    token += "&se=" + expiry
    if policy:
        token += "&skn=" + policy
    return token


def sas_token(uri, key_b64, expiry, policy=None):
    """A SAS token for the (unencoded) resource `uri`, valid until `expiry` (Unix seconds).

    `policy` adds `&skn=`: a hub shared-access policy name, or "registration" for DPS.
    """
    return _token(encoding.quote(uri, safe=""), decode_key(key_b64), expiry, policy)


def _expiry(expiry, ttl_s):
    if expiry is not None:
        return expiry
    from tether.hal.clock import unix_time

    return unix_time() + ttl_s


def hub_token(host, device_id, key_b64, expiry=None, ttl_s=DEFAULT_TTL_S, module_id=None):
    """Device (or module) SAS for IoT Hub: no `skn`; expiry defaults to now + ttl_s."""
    return sas_token(hub_uri(host, device_id, module_id), key_b64, _expiry(expiry, ttl_s))


def dps_token(id_scope, registration_id, key_b64, expiry=None, ttl_s=DEFAULT_TTL_S):
    """DPS registration SAS: `skn=registration`; expiry defaults to now + ttl_s."""
    uri = dps_uri(id_scope, registration_id)
    return sas_token(uri, key_b64, _expiry(expiry, ttl_s), DPS_POLICY)


def derive_device_key(group_key_b64, registration_id):
    """Group-enrollment device key: base64(HMAC-SHA256(b64decode(group_key), reg_id)), str."""
    key = decode_key(group_key_b64, "group enrollment key")
    return encoding.b64encode(_hmac(key, registration_id.encode())).decode()


class SasCredentials(Credentials):
    """tether.credentials.Credentials that mint a fresh SAS password per connect.

        user = host + "/" + dev + "/?api-version=2021-04-12"
        creds = SasCredentials(hub_uri(host, dev), key, username=user)
        username, password = creds.mint(unix_time())   # creds.expires_at == now + 3600

    The key is decoded once here, so a bad key fails at construction, not at connect.
    """

    needs_time = True  # `se` must be in the future for the service: a sane clock first

    def __init__(self, uri, key_b64, ttl_s=DEFAULT_TTL_S, policy=None, username=""):
        if not isinstance(ttl_s, int) or ttl_s <= 0:
            raise CredentialError("SAS ttl_s must be a positive int of seconds")
        self.uri = uri
        self._sr = encoding.quote(uri, safe="")
        self.ttl_s = ttl_s
        self.policy = policy
        self.username = username
        self.expires_at = None
        self._key = decode_key(key_b64)

    def mint(self, now):
        """(username, token) valid until now + ttl_s; sets expires_at."""
        expires = int(now) + self.ttl_s
        token = _token(self._sr, self._key, expires, self.policy)
        self.expires_at = expires
        return self.username, token

    def __repr__(self):  # never the key
        return "SasCredentials(%r, ttl_s=%d)" % (self.uri, self.ttl_s)
