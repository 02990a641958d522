"""SAS tokens as IoT Hub and DPS check them (protocols.md §2.2, §2.6).

Written with CPython's hmac/base64 and nothing of the device side (tether.sas): the
emulator is a second, independent implementation, so a test that connects also proves the
two agree.

    SharedAccessSignature sr={enc(uri)}&sig={enc(b64(HMAC-SHA256(key, enc(uri) + "\\n" + se)))}
                          &se={expiry}[&skn={policy}]

The signed string is the `sr` field exactly as it appears in the token (still URL-encoded),
which is what the hub recomputes too; the resource it names is compared decoded and
case-insensitively (the SDK does not lower-case it, Microsoft's samples do).
"""

import base64
import binascii
import hashlib
import hmac
import time
import urllib.parse

PREFIX = "SharedAccessSignature "
FIELDS = ("sr", "sig", "se", "skn")


class SasError(ValueError):
    """The token is refused; the message says why (never the signature or the key)."""


def sign(key_b64, message):
    """base64(HMAC-SHA256(b64decode(key_b64), message)) as str."""
    try:
        key = base64.b64decode(key_b64, validate=True)
    except (binascii.Error, ValueError):
        raise SasError("the registered key is not base64") from None
    digest = hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def derive_key(group_key_b64, registration_id):
    """A group enrollment's per-device key: base64(HMAC-SHA256(group key, registration id))."""
    return sign(group_key_b64, registration_id)


def parse(token):
    """-> {field: raw value} (still URL-encoded). SasError unless it is a SAS token."""
    if isinstance(token, (bytes, bytearray)):
        try:
            token = bytes(token).decode("utf-8")
        except UnicodeDecodeError:
            raise SasError("password is not UTF-8") from None
    if not token.startswith(PREFIX):
        raise SasError("password is not a SharedAccessSignature")
    fields = {}
    for part in token[len(PREFIX) :].split("&"):
        name, sep, value = part.partition("=")
        if not sep or name not in FIELDS or name in fields:
            raise SasError("bad or repeated field %r in the token" % name[:20])
        fields[name] = value
    for name in ("sr", "sig", "se"):
        if name not in fields:
            raise SasError("token has no %s" % name)
    return fields


def check(token, keys, resources, skn_allowed=(None,), now=None):
    """Verify a token. keys: base64 keys (any may match; None entries skipped); resources:
    the decoded URIs `sr` may name; skn_allowed: accepted `skn` values (None = absent).
    Returns the expiry (int Unix seconds). Raises SasError with the reason."""
    f = parse(token)
    sr = urllib.parse.unquote(f["sr"])
    if sr.lower() not in [r.lower() for r in resources]:
        raise SasError("sr %r names another resource" % sr[:200])
    skn = urllib.parse.unquote(f["skn"]) if "skn" in f else None
    if skn not in skn_allowed:
        raise SasError("skn %r is not accepted here" % (skn or "")[:40])
    if not f["se"].isdigit():
        raise SasError("se %r is not a decimal expiry" % f["se"][:20])
    se = int(f["se"])
    now = time.time() if now is None else now
    if se <= now:
        raise SasError("token expired %d s ago" % int(now - se))
    sig = urllib.parse.unquote(f["sig"]).encode("ascii", "replace")
    message = f["sr"] + "\n" + f["se"]
    for key in keys:
        if key and hmac.compare_digest(sign(key, message).encode("ascii"), sig):
            return se
    raise SasError("signature does not match the registered key")
