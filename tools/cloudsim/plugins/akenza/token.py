"""akenza's JWT device credentials, checked the way the broker must (protocols.md §3.2, §3.7).

This side uses PyJWT and `cryptography` only, never Tether's own JWT or key code, so a token
Tether mints and this check accepts is also a compatibility test between two
implementations. Every refusal is a TokenError naming the header field or claim at fault
(`alg`, `kid`, `signature`, `aud`, `exp`, `iat`, `sub`, ...): that is what the emulator logs
and what a device's error message should name too.
"""

import base64
import hashlib
import json

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ALGORITHMS = ("ES256", "RS256")
DEFAULT_AUDIENCE = "https://akenza.io/devices/{id}"
_ES256_SIG_LEN = 64  # R || S, 32 bytes each (RFC 7518 §3.4)


class TokenError(ValueError):
    """A token refused; `claim` names the header field or claim at fault."""

    def __init__(self, claim, reason):
        super().__init__("%s: %s" % (claim, reason))
        self.claim = claim
        self.reason = reason


class PublicKey:
    """A key registered for a device: from a public key PEM or a (self-signed) certificate
    PEM, as pasted into akenza. `kid` is the lowercase hex SHA-256 of its DER
    SubjectPublicKeyInfo; `algorithm` the one JWT algorithm it verifies."""

    def __init__(self, pem):
        if isinstance(pem, str):
            pem = pem.encode()
        pem = bytes(pem)
        self.certificate = None
        if b"-----BEGIN CERTIFICATE-----" in pem:
            self.certificate = x509.load_pem_x509_certificate(pem)
            key = self.certificate.public_key()
        elif b"-----BEGIN" in pem:
            key = serialization.load_pem_public_key(pem)
        else:
            raise ValueError("not a PEM public key or certificate")
        if isinstance(key, ec.EllipticCurvePublicKey):
            if key.curve.name != "secp256r1":
                raise ValueError("EC keys must be P-256, not %s" % key.curve.name)
            self.algorithm = "ES256"
        elif isinstance(key, rsa.RSAPublicKey):
            if key.key_size < 2048:
                raise ValueError("RSA keys must have at least 2048 bits")
            self.algorithm = "RS256"
        else:
            raise ValueError("only EC P-256 and RSA keys are accepted")
        self.key = key
        self.spki = key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.kid = hashlib.sha256(self.spki).hexdigest()

    def __repr__(self):
        return "PublicKey(%s, kid=%s...)" % (self.algorithm, self.kid[:12])


def _b64url(part, what):
    if not part or "=" in part:  # JWS forbids padding (RFC 7515 §2)
        raise TokenError(what, "not base64url without padding")
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except ValueError:
        raise TokenError(what, "not base64url") from None


def _json_object(part, what):
    try:
        obj = json.loads(_b64url(part, what))
    except (UnicodeDecodeError, ValueError):
        raise TokenError(what, "not JSON") from None
    if not isinstance(obj, dict):
        raise TokenError(what, "not a JSON object")
    return obj


def _int_claim(claims, name):
    if name not in claims:
        raise TokenError(name, "missing")
    value = claims[name]
    # NumericDate: seconds since 1970; a bool is a JSON true/false, not a number.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TokenError(name, "not a NumericDate (%r)" % (value,))
    return value


def verify(token, keys, device_id, now, audience=DEFAULT_AUDIENCE, iat_skew_s=60,
           max_lifetime_s=0):  # fmt: skip
    """-> (claims, key) for a token the broker accepts, or raise TokenError.

    keys: the device's registered PublicKeys. audience: the expected `aud`, "{id}" standing
    for the device id. now: Unix seconds. iat may be at most iat_skew_s in the future;
    max_lifetime_s (0: no limit) bounds exp - iat."""
    if isinstance(token, (bytes, bytearray)):
        try:
            token = bytes(token).decode("ascii")
        except UnicodeDecodeError:
            raise TokenError("token", "not ASCII") from None
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("token", "a JWT has 3 dot-separated parts, this one %d" % len(parts))
    header = _json_object(parts[0], "header")
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise TokenError("alg", "%r is not one of %s" % (alg, ", ".join(ALGORITHMS)))
    if "typ" in header and header["typ"] != "JWT":
        raise TokenError("typ", "%r is not JWT" % (header["typ"],))
    if not keys:
        raise TokenError("kid", "the device has no registered key")
    kid = header.get("kid")
    if kid is not None:
        chosen = [k for k in keys if k.kid == kid]
        if not chosen:
            raise TokenError(
                "kid",
                "%r is not the SHA-256 of any key registered for %s (registered: %s)"
                % (kid, device_id, ", ".join(k.kid[:16] + "..." for k in keys)),
            )
    else:
        chosen = list(keys)  # no kid: any registered key of the token's kind may verify it
    chosen = [k for k in chosen if k.algorithm == alg]
    if not chosen:
        raise TokenError("alg", "%s does not fit the device's key (%s)" % (
            alg, "/".join(sorted({k.algorithm for k in keys}))))  # fmt: skip
    signature = _b64url(parts[2], "signature")
    if alg == "ES256" and len(signature) != _ES256_SIG_LEN:
        der = signature[:1] == b"\x30" and len(signature) in range(8, 73)
        raise TokenError(
            "signature",
            "ES256 signature is %d bytes, not the 64-byte R||S JWS needs%s"
            % (len(signature), " (it is ASN.1 DER: convert it to R||S)" if der else ""),
        )
    for key in chosen:
        try:
            payload = jwt.api_jws.PyJWS().decode(token, key.key, algorithms=[alg])
            break
        except jwt.InvalidSignatureError:
            continue
        except jwt.InvalidTokenError as exc:
            raise TokenError("token", str(exc)) from None
    else:
        raise TokenError("signature", "does not verify with the registered %s key" % alg)
    try:
        claims = json.loads(payload)
    except (UnicodeDecodeError, ValueError):
        raise TokenError("claims", "not JSON") from None
    if not isinstance(claims, dict):
        raise TokenError("claims", "not a JSON object")
    _check_claims(claims, device_id, now, audience, iat_skew_s, max_lifetime_s)
    return claims, key


def _check_claims(claims, device_id, now, audience, iat_skew_s, max_lifetime_s):
    want = audience.replace("{id}", device_id)
    aud = claims.get("aud")
    if aud is None:
        raise TokenError("aud", "missing (want %r)" % want)
    auds = aud if isinstance(aud, list) else [aud]  # RFC 7519 §4.1.3: a string or a list
    if want not in auds:
        raise TokenError("aud", "%r is not %r" % (aud, want))
    exp = _int_claim(claims, "exp")
    iat = _int_claim(claims, "iat")
    if exp <= now:
        raise TokenError("exp", "expired %d s ago" % int(now - exp + 1))
    if iat > now + iat_skew_s:
        raise TokenError(
            "iat", "%d s in the future (skew allowed: %d s): is the clock set?" % (
                int(iat - now), iat_skew_s))  # fmt: skip
    if exp <= iat:
        raise TokenError("exp", "not after iat")
    if max_lifetime_s and exp - iat > max_lifetime_s:
        raise TokenError(
            "exp", "lifetime %d s exceeds the %d s allowed" % (exp - iat, max_lifetime_s)
        )
    sub = claims.get("sub")
    if sub is not None and sub != device_id:
        raise TokenError("sub", "%r is not the device id %r" % (sub, device_id))
    if "nbf" in claims and _int_claim(claims, "nbf") > now + iat_skew_s:
        raise TokenError("nbf", "the token is not valid yet")
