"""Astarte pairing (protocols.md §5.2): registration, the device certificate, the broker URL.

    secret = register_device_with_jwt_token(device_id, "myrealm", jwt, "https://api/pairing")
    secret = await aregister_device_with_jwt_token(...)       # the same, inside a running loop

The SDK's functions are synchronous (asyncio.run inside); in an asyncio program await the
`a...` forms. Errors: DeviceAlreadyRegisteredError (422), AuthorizationError (401/403),
APIError (any other error reply, or a reply without the expected field); the network's
own failures stay OSError.

Pairing (used by DeviceMqtt) keeps the device's P-256 key and certificate in
`<persistency_dir>/<device_id>/crypto/` (device.key, device.crt, PEM, the SDK's names): the
key is generated on the device once and reused; a certificate is asked for with a CSR
(CN={realm}/{device_id}, O=Devices) when there is none or the pairing API says it is no
longer valid. TLS to the pairing API is verified (ca= for a self-hosted Astarte;
insecure=True for ignore_ssl_errors, which warns at every connect).
"""

import asyncio
import os

from tether import log
from tether.astarte.errors import (
    APIError,
    AuthorizationError,
    DeviceAlreadyRegisteredError,
    JWTGenerationError,
)

_log = log.getLogger("astarte")


def _b64id(raw16):
    from tether.encoding import b64url_encode

    s = b64url_encode(raw16)
    return s.decode() if isinstance(s, bytes) else s


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


def _read_ca(ca):
    if ca is None or isinstance(ca, (bytes, bytearray)):
        return ca
    if "-----BEGIN" in ca:
        return ca.encode()
    with open(ca, "rb") as f:
        return f.read()


class Api:
    """The pairing API's calls for one base URL (one TLS context, built at the first call)."""

    def __init__(self, base_url, ca=None, insecure=False, timeout_ms=30000):
        self.base = base_url.rstrip("/") + "/v1/"
        self.ca = _read_ca(ca)
        self.insecure = insecure
        self.timeout_ms = timeout_ms
        self._ssl = None

    def _kw(self, token):
        kw = {"headers": {"Authorization": "Bearer " + token}, "timeout_ms": self.timeout_ms}
        if self.base.startswith("https:"):
            if self._ssl is None:
                from tether import tlsctx

                self._ssl = tlsctx.client_context(cadata=self.ca, insecure=self.insecure)
            kw["ssl"] = self._ssl
        return kw

    def release(self):
        """Drop the TLS context until the next call: between connects the RAM is the MQTT
        connection's (a board's heap holds one TLS context comfortably, not two)."""
        self._ssl = None
        import gc

        gc.collect()

    async def call(self, method, path, token, body=None):
        from tether import http

        try:
            if method == "GET":
                return await http.get_json(self.base + path, **self._kw(token))
            return await http.post_json(self.base + path, body, **self._kw(token))
        except http.HTTPError as exc:
            st = exc.status
            text = str(exc)
            if st == 422 and path.endswith("/agent/devices"):
                raise DeviceAlreadyRegisteredError(text)
            if st in (401, 403):
                raise AuthorizationError(text)
            raise APIError(text)

    async def register(self, realm, device_id, jwt):
        r = await self.call("POST", realm + "/agent/devices", jwt, {"data": {"hw_id": device_id}})
        return _field(r, "credentials_secret")


def _field(reply, name):
    try:
        return reply["data"][name]
    except (KeyError, TypeError, IndexError):
        raise APIError("pairing reply without data.%s: %r" % (name, reply))


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


def _write(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    try:
        os.rename(tmp, path)
    except OSError:  # FAT: rename does not replace
        os.remove(path)
        os.rename(tmp, path)


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def makedirs(path):
    cur = ""
    for part in path.split("/"):
        cur = cur + "/" + part if cur or path.startswith("/") else part
        if part:
            try:
                os.mkdir(cur)
            except OSError:
                pass


class Pairing:
    """The device's credentials: key (made here once), certificate, broker address."""

    def __init__(self, device_id, realm, secret, api, crypto_dir):
        self.device_id = device_id
        self.realm = realm
        self.secret = secret
        self.api = api
        self.dir = crypto_dir
        makedirs(crypto_dir)
        self.key_path = crypto_dir + "/device.key"
        self.cert_path = crypto_dir + "/device.crt"
        self.key_pem = _read(self.key_path)
        self.cert_pem = _read(self.cert_path)
        self.counts = {"keys": 0, "certificates": 0, "verifies": 0}

    def _dev(self):
        return "%s/devices/%s" % (self.realm, self.device_id)

    def _key(self):
        from tether.keys import generate_p256, load_private_key

        if self.key_pem is not None:
            return load_private_key(self.key_pem)
        k = generate_p256()
        pem = k.to_pem()
        self.key_pem = pem.encode() if isinstance(pem, str) else pem
        _write(self.key_path, self.key_pem)
        self.counts["keys"] += 1
        return k

    async def obtain_certificate(self):
        from tether.csr import make_pem

        csr = make_pem(self._key(), [("CN", self.realm + "/" + self.device_id), ("O", "Devices")])
        if isinstance(csr, bytes):
            csr = csr.decode()
        path = self._dev() + "/protocols/astarte_mqtt_v1/credentials"
        r = await self.api.call("POST", path, self.secret, {"data": {"csr": csr}})
        crt = _field(r, "client_crt")
        self.cert_pem = crt.encode()
        _write(self.cert_path, self.cert_pem)
        self.counts["certificates"] += 1
        _log.info("new device certificate from the pairing API")

    async def verify(self):
        """True when the pairing API says the stored certificate is valid."""
        path = self._dev() + "/protocols/astarte_mqtt_v1/credentials/verify"
        body = {"data": {"client_crt": self.cert_pem.decode()}}
        self.counts["verifies"] += 1
        r = await self.api.call("POST", path, self.secret, body)
        return _field(r, "valid") is True

    async def ensure_certificate(self, verify=True):
        """A certificate known valid: obtain one when missing, or when verify says no."""
        if self.cert_pem is None:
            await self.obtain_certificate()
        elif verify and not await self.verify():
            _log.warning("device certificate no longer valid: asking for a new one")
            await self.obtain_certificate()

    async def broker(self):
        """(host, port) of the MQTT broker from the transport information."""
        r = await self.api.call("GET", self._dev(), self.secret)
        try:
            url = r["data"]["protocols"]["astarte_mqtt_v1"]["broker_url"]
        except (KeyError, TypeError):
            raise APIError("transport information without astarte_mqtt_v1.broker_url")
        return parse_broker_url(url)


def parse_broker_url(url):
    """mqtts://host:port/ (or ssl://): (host, port); only host and port are used."""
    i = url.find("://")
    rest = url[i + 3 :] if i >= 0 else url
    rest = rest.split("/")[0]
    if rest.startswith("["):  # [v6]:port
        j = rest.find("]")
        host, rest = rest[1:j], rest[j + 1 :]
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = rest.rpartition(":") if ":" in rest else (rest, "", "")
    try:
        port = int(port) if port else 8883
    except ValueError:
        raise APIError("broker_url %r: bad port" % url)
    if not host:
        raise APIError("broker_url %r: no host" % url)
    return host, port
