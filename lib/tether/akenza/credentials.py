"""akenza device credentials: a JWT signed on the device, minted before every connect.

    creds = JwtCredentials("dev-1", signer)            # signer: tether.keys / SE05x / PKCS#11
    user, password = creds.mint(now)                     # ("unused", "<header>.<claims>.<sig>")
    creds.expires_at                                     # now + lifetime_s

Claims (protocols.md §3.2): `iat` = now, `exp` = now + lifetime_s, `aud` =
`https://akenza.io/devices/{device_id}` unless another audience is given (a private cloud).
Header: `alg` (ES256 or RS256, the signer's), `typ` JWT, `kid` = lowercase hex SHA-256 of
the DER SubjectPublicKeyInfo (omitted when the signer cannot say its public key and no kid
is given: akenza's Java sample leaves it out too).

needs_time is True: the cloud base waits for a sane wall clock before it calls mint(), and
mint() itself refuses a clock before 2020 (a board without a battery wakes in 1970 or 2000;
a token with such an `iat` would only be refused by the broker as expired).
"""

import json
from binascii import b2a_base64

from tether.compat import const
from tether.credentials import Credentials
from tether.errors import CredentialError

AUDIENCE = "https://akenza.io/devices/%s"
USERNAME = "unused"  # the broker ignores it, but it must be present for the password to go
_EARLIEST = const(1577836800)  # 2020-01-01T00:00:00Z: anything before is an unset clock


class JwtCredentials(Credentials):
    needs_time = True

    def __init__(
        self,
        device_id,
        signer,
        audience=None,
        lifetime_s=1200,
        username=USERNAME,
        algorithm=None,
        kid=None,
    ):
        alg = algorithm or signer.algorithm
        if alg not in ("ES256", "RS256"):
            raise CredentialError("algorithm %s: akenza takes ES256 or RS256" % alg)
        if alg != signer.algorithm:
            raise CredentialError(
                "the key signs %s, but algorithm %s was asked for (an EC P-256 key signs "
                "ES256, an RSA key RS256)" % (signer.algorithm, alg)
            )
        if not isinstance(lifetime_s, int) or lifetime_s < 2:
            raise CredentialError("token lifetime must be whole seconds, at least 2")
        self.device_id = device_id
        self.signer = signer
        self.algorithm = alg
        self.audience = audience or AUDIENCE % device_id
        self.lifetime_s = lifetime_s
        self.username = username
        self.kid = kid if kid is not None else _kid_of(signer)
        self.expires_at = None
        self.claims = None  # of the last token minted (for error messages; no secret in it)

    def mint(self, now):
        now = int(now)
        if now < _EARLIEST:
            raise CredentialError(
                "the clock is not set (Unix time %d): a JWT needs the real time for iat "
                "and exp; sync it first (SNTP)" % now
            )
        claims = {"iat": now, "exp": now + self.lifetime_s, "aud": self.audience}
        token = self._encode(claims)
        self.claims = claims
        self.expires_at = claims["exp"]
        return self.username, token

    def _encode(self, c):
        # The compact JWS tether.jwt.encode makes for these claims (header keys sorted,
        # compact JSON; tests compare the two), written here because a renewal must not
        # import tether.jwt and its encoding module (12 KB of bytecode from .mpy) into a
        # heap that TLS and MQTT have cut up: minting is the peak of a token renewal.
        kid = '"kid":%s,' % json.dumps(self.kid) if self.kid else ""
        head = '{"alg":"%s",%s"typ":"JWT"}' % (self.algorithm, kid)
        body = '{"iat":%d,"exp":%d,"aud":%s}' % (c["iat"], c["exp"], json.dumps(c["aud"]))
        signing = _b64(head.encode()) + b"." + _b64(body.encode())
        sig = self.signer.sign(signing)
        if self.algorithm == "ES256" and len(sig) != 64:
            raise CredentialError("the signer gave %d bytes; ES256 needs raw R||S (64)" % len(sig))
        return (signing + b"." + _b64(sig)).decode()

    def describe(self):
        """What the last token claimed, for a refusal message: never the token itself."""
        c = self.claims or {}
        return "alg %s, kid %s, aud %r, iat %s, exp %s" % (
            self.algorithm,
            self.kid or "(none)",
            self.audience,
            c.get("iat"),
            c.get("exp"),
        )


class Slim:
    """A software key's signing part, without tether.keys / tether.der (tether.akenza.keyload):
    the P-256 scalar (p256 is imported per signature, and dropped after each mint by
    JwtCredentials) or the rsa.RSAPrivate."""

    def __init__(self, signer):
        self.algorithm = signer.algorithm
        self._spki = signer.public_key_der()
        self._key = signer._d if self.algorithm == "ES256" else signer._priv

    def sign(self, message):
        if self.algorithm == "RS256":
            return self._key.sign_pkcs1_sha256(message)
        from hashlib import sha256

        from tether.compat import build_once

        r, s = build_once(_sign_p256, self._key, sha256(message).digest())
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def public_key_der(self):
        return self._spki


def _sign_p256(d, digest):
    from tether.p256 import sign_digest  # dropped again after each token (build_once)

    return sign_digest(d, digest)


def _b64(b):
    # base64url without padding (RFC 7515 §2)
    return b2a_base64(b).rstrip(b"=\n").replace(b"+", b"-").replace(b"/", b"_")


def _kid_of(signer):
    """akenza's kid for a signer's public key; None when the signer cannot say it (an SE05x
    key given without its certificate)."""
    try:
        spki = signer.public_key_der()
    except (CredentialError, NotImplementedError) as exc:
        from tether import log

        log.getLogger("akenza").warning("no kid in the token header: %s", exc)
        return None
    from binascii import hexlify
    from hashlib import sha256

    return hexlify(sha256(spki).digest()).decode()  # = tether.keys.fingerprint
