"""Astarte pairing (protocols.md §5.2): the SDK's registration functions and device ids.

    secret = register_device_with_jwt_token(device_id, "myrealm", jwt, "https://api/pairing")
    secret = await aregister_device_with_jwt_token(...)       # the same, inside a running loop

The SDK's functions are synchronous (asyncio.run inside); in an asyncio program await the
`a...` forms. Errors: DeviceAlreadyRegisteredError (422), AuthorizationError (401/403),
APIError (any other error reply, or a reply without the expected field); the network's
own failures stay OSError.

The device's key, CSR and certificate (what DeviceMqtt's pairing stage does) are in
tether.astarte.certificate; Api, Pairing, parse_broker_url and cert_validity are importable
from here too. TLS to the pairing API is verified (ca= for a self-hosted Astarte;
ignore_ssl_errors=True skips it).
"""

import asyncio
import os

from tether import log
from tether.astarte.certificate import (  # noqa: F401 (the names users found here)
    Api,
    Pairing,
    _field,
    cert_validity,
    parse_broker_url,
    read_ca,
)
from tether.astarte.errors import JWTGenerationError
from tether.astarte.properties import makedirs  # noqa: F401 (the profile imports it here)

_log = log.getLogger("astarte")


def _b64id(raw16):
    # base64url without padding, from binascii alone: an Astarte image carries no
    # tether.encoding (1.6 KB of flash for this one call)
    from binascii import b2a_base64

    s = b2a_base64(raw16).strip().rstrip(b"=")
    return s.replace(b"+", b"-").replace(b"/", b"_").decode()


def generate_device_id(namespace, unique_data):
    """UUIDv5(namespace, unique_data) in Astarte's form (base64url, no padding)."""
    import hashlib

    ns = getattr(namespace, "bytes", namespace)
    if isinstance(ns, str):
        from binascii import unhexlify

        ns = unhexlify(ns.replace("-", ""))
    if len(ns) != 16:
        raise ValueError("namespace: a UUID (16 bytes)")
    h = bytearray(hashlib.sha1(bytes(ns) + unique_data.encode()).digest()[:16])
    h[6] = (h[6] & 0x0F) | 0x50
    h[8] = (h[8] & 0x3F) | 0x80
    return _b64id(bytes(h))


def generate_random_device_id():
    """A UUIDv4 device id (random each time: for tests, not for production)."""
    h = bytearray(os.urandom(16))
    h[6] = (h[6] & 0x0F) | 0x40
    h[8] = (h[8] & 0x3F) | 0x80
    return _b64id(bytes(h))


def _run(coro):
    return asyncio.run(coro)


async def aregister_device_with_jwt_token(
    device_id, realm, jwt_token, pairing_base_url, ignore_ssl_errors=False, ca=None
):
    api = Api(pairing_base_url, ca, ignore_ssl_errors)
    return await api.register(realm, device_id, jwt_token)


def register_device_with_jwt_token(
    device_id, realm, jwt_token, pairing_base_url, ignore_ssl_errors=False, ca=None
):
    """Register the device with an agent JWT (claim a_pa); returns the credentials secret."""
    return _run(
        aregister_device_with_jwt_token(
            device_id, realm, jwt_token, pairing_base_url, ignore_ssl_errors, ca
        )
    )


def agent_jwt(private_key, now=None, ttl_s=30):
    """An agent JWT from the realm's private key (PEM/DER bytes or a path): ES256 for an EC
    key, RS256 for RSA (the SDK always signs RS256, and fails with PyJWT 2)."""
    import time

    from tether import jwt
    from tether.keys import load_private_key

    try:
        if isinstance(private_key, str) and "-----BEGIN" not in private_key:
            with open(private_key, "rb") as f:
                private_key = f.read()
        signer = load_private_key(private_key)
        now = int(time.time()) if now is None else now
        claims = {"a_pa": [".*::.*"], "iat": now, "exp": now + ttl_s}
        return jwt.encode(claims, signer, algorithm=signer.algorithm)
    except (OSError, ValueError) as exc:
        raise JWTGenerationError("agent JWT from %s: %s" % (type(private_key).__name__, exc))


async def aregister_device_with_private_key(
    device_id, realm, private_key_file, pairing_base_url, ignore_ssl_errors=False, ca=None
):
    token = agent_jwt(private_key_file)
    return await aregister_device_with_jwt_token(
        device_id, realm, token, pairing_base_url, ignore_ssl_errors, ca
    )


def register_device_with_private_key(
    device_id, realm, private_key_file, pairing_base_url, ignore_ssl_errors=False, ca=None
):
    """Register with a JWT signed here by the realm's private key; returns the secret."""
    return _run(
        aregister_device_with_private_key(
            device_id, realm, private_key_file, pairing_base_url, ignore_ssl_errors, ca
        )
    )
