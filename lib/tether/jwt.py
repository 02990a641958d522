"""JSON Web Tokens (RFC 7519) signed ES256 or RS256, shaped like PyJWT's ``jwt.encode``.

    import tether.jwt as jwt
    token = jwt.encode({"iat": now, "exp": now + 1200, "aud": aud}, key_der_or_pem,
                       algorithm="ES256", headers={"kid": fingerprint})

The token is ``b64url(header) . b64url(payload) . b64url(signature)`` without padding. The
header is ``{"alg", "typ": "JWT"}`` plus ``headers``, keys sorted and compact as PyJWT writes
it (``headers["alg"]`` wins over ``algorithm``, as there); on CPython the payload is the
same bytes PyJWT makes. ``datetime`` values of iat/exp/nbf become integer Unix seconds
(CPython; MicroPython has no datetime, pass ints). ES256 signatures are raw R||S, 64 bytes,
never DER (RFC 7518 3.4), with RFC 6979 deterministic k: the same inputs give the same token.

``key`` is a private key as PEM text/bytes or DER bytes (tether.keys), or any Signer
(``.algorithm``, ``.sign(message)``), e.g. a secure element. Loading a key on every call
costs little next to signing; pass a Signer from tether.keys.load_private_key to skip it.
"""

import json

from tether.compat import MICROPYTHON
from tether.encoding import b64url_encode
from tether.errors import CredentialError

_SEP = (",", ":")
_ALGORITHMS = ("ES256", "RS256")


class JWTError(CredentialError):
    """The token cannot be made: unsupported algorithm, wrong key type, bad header. A
    CredentialError, so a Credentials.mint() that makes a JWT need not translate it."""


def _timegm(t):
    # calendar.timegm for a UTC time tuple, without the calendar module (days-from-civil).
    y, m = t[0], t[1]
    if m <= 2:
        y -= 1
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + t[2] - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    return days * 86400 + t[3] * 3600 + t[4] * 60 + t[5]


def _header_json(header):
    if not MICROPYTHON:
        return json.dumps(header, separators=_SEP, sort_keys=True)
    # MicroPython's json has no sort_keys and its dict order is not insertion order.
    parts = [json.dumps(k) + ":" + json.dumps(header[k], separators=_SEP) for k in sorted(header)]
    return "{" + ",".join(parts) + "}"


def _signer(key):
    if hasattr(key, "algorithm") and hasattr(key, "sign"):
        return key
    if isinstance(key, (str, bytes, bytearray, memoryview)):
        from tether.keys import load_private_key

        return load_private_key(key)
    raise JWTError("key must be PEM text/bytes, DER bytes or a Signer")


def encode(payload, key, algorithm=None, headers=None):
    """The compact JWT for payload (a dict), signed with key; returns str.

    algorithm: "ES256" or "RS256"; None means the key's own. TypeError for a payload that
    is not a dict or a non-str "iss" (as PyJWT); JWTError for what cannot be signed.
    """
    if not isinstance(payload, dict):
        raise TypeError("Expecting a dict object, as JWT only supports JSON objects as payloads.")
    payload = dict(payload)
    for claim in ("exp", "iat", "nbf"):
        v = payload.get(claim)
        if hasattr(v, "utctimetuple"):  # a datetime, without importing datetime
            payload[claim] = _timegm(v.utctimetuple())
    if "iss" in payload and not isinstance(payload["iss"], str):
        raise TypeError("Issuer (iss) must be a string.")

    signer = _signer(key)
    alg = algorithm or signer.algorithm
    if headers and headers.get("alg"):
        alg = headers["alg"]
    if alg not in _ALGORITHMS:
        raise JWTError("algorithm %s not supported (ES256 or RS256)" % alg)
    if alg != signer.algorithm:
        raise JWTError("a %s key cannot sign %s" % (signer.algorithm, alg))

    header = {"typ": "JWT", "alg": alg}
    if headers:
        if "kid" in headers and not isinstance(headers["kid"], str):
            raise JWTError("Key ID header parameter must be a string")
        if headers.get("b64") is False:
            raise JWTError("unencoded payloads (b64=false) are not supported")
        header.update(headers)
    if not header["typ"]:
        del header["typ"]
    header.pop("b64", None)  # True is the default; PyJWT leaves it out too

    signing_input = (
        b64url_encode(_header_json(header).encode())
        + b"."
        + b64url_encode(json.dumps(payload, separators=_SEP).encode())
    )
    sig = signer.sign(signing_input)
    if alg == "ES256" and len(sig) != 64:
        raise JWTError("the signer returned %d bytes; ES256 needs raw R||S (64)" % len(sig))
    return (signing_input + b"." + b64url_encode(sig)).decode()
