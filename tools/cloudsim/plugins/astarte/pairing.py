"""Astarte's Pairing API over TLS (protocols.md §5.2, §5.12): agent registration with a JWT
signed by the realm's key, credentials (the device's CSR signed by the test CA), verify,
and the device's transport info pointing at the emulator's MQTT listener.

Replies are JSON, errors as {"errors": {"detail": "..."}}. Paths live at the root and under
/pairing (a standard install's base URL is https://api.host/pairing).

    POST /v1/{realm}/agent/devices                       Bearer JWT (a_pa)  201 secret
    DELETE /v1/{realm}/agent/devices/{id}                 Bearer JWT         204
    GET  /v1/{realm}/devices/{id}                         Bearer secret      broker_url
    POST /v1/{realm}/devices/{id}/protocols/astarte_mqtt_v1/credentials          201 cert
    POST /v1/{realm}/devices/{id}/protocols/astarte_mqtt_v1/credentials/verify   200 valid
"""

import base64
import binascii
import datetime
import hmac
import re
import secrets
import time

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from ...core.http import HttpError, Response
from ...core.plugin import Route

_ID_RE = re.compile(r"^[A-Za-z0-9_-]{22}$")
_CRED = "/v1/{realm}/devices/{id}/protocols/astarte_mqtt_v1/credentials"
JWT_LEEWAY_S = 5


def _err(status, detail):
    return HttpError(status, detail, {"errors": {"detail": detail}})


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


class Realm:
    """A realm and its pairing key (RSA 2048 by default, as `astartectl` makes; "ec" gives
    a P-256 key for ES256 tokens)."""

    def __init__(self, name, key_type="rsa", private_key_pem=None):
        self.name = name
        if private_key_pem is not None:
            self.key = serialization.load_pem_private_key(private_key_pem, None)
        elif key_type == "ec":
            self.key = ec.generate_private_key(ec.SECP256R1())
        else:
            self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.algorithm = "ES256" if isinstance(self.key, ec.EllipticCurvePrivateKey) else "RS256"

    def private_key_pem(self):
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def public_key_pem(self):
        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def agent_jwt(self, ttl_s=300, paths=(".*::.*",), now=None, claims=None):
        """A pairing token: {"a_pa": [...], "iat", "exp"} (ttl_s None: no exp)."""
        now = int(time.time() if now is None else now)
        body = {"a_pa": list(paths), "iat": now}
        if ttl_s is not None:
            body["exp"] = now + int(ttl_s)
        body.update(claims or {})
        return jwt.encode(body, self.key, algorithm=self.algorithm)

    def check_jwt(self, token, method, path):
        """Raise HttpError unless token is a valid pairing token for method + path."""
        try:
            claims = jwt.decode(
                token,
                self.key.public_key(),
                algorithms=[self.algorithm],
                leeway=JWT_LEEWAY_S,
                options={"verify_aud": False},
            )
        except jwt.PyJWTError as exc:
            raise _err(401, "bad pairing token: %s" % exc)
        granted = claims.get("a_pa")
        if not isinstance(granted, list):
            raise _err(403, "the token has no a_pa claim")
        for entry in granted:
            m_re, sep, p_re = str(entry).partition("::")
            try:
                if sep and re.fullmatch(m_re, method) and re.fullmatch(p_re, path):
                    return claims
            except re.error:
                continue
        raise _err(403, "a_pa does not grant %s::%s" % (method, path))


class Pairing:
    """The HTTP side; `plugin` holds realms, devices and knobs (see __init__.py)."""

    def __init__(self, plugin):
        self.plugin = plugin

    def routes(self, listener):
        out = []
        for base in ("", "/pairing"):
            out += [
                Route("POST", base + "/v1/{realm}/agent/devices", self.register, listener),
                Route(
                    "DELETE", base + "/v1/{realm}/agent/devices/{id}", self.unregister, listener
                ),
                Route("GET", base + "/v1/{realm}/devices/{id}", self.info, listener),
                Route("POST", base + _CRED, self.credentials, listener),
                Route("POST", base + _CRED + "/verify", self.verify, listener),
            ]
        return out

    # -- agent --------------------------------------------------------------------------------

    def _realm(self, req):
        realm = self.plugin.realms.get(req.params["realm"])
        if realm is None:
            raise _err(404, "realm %r not found" % req.params["realm"])
        return realm

    def _agent(self, req, path):
        realm = self._realm(req)
        token = req.bearer()
        if token is None:
            raise _err(401, "Authorization: Bearer <JWT> needed")
        realm.check_jwt(token, req.method, path)
        return realm

    async def register(self, req):
        realm = self._agent(req, "agent/devices")
        body = req.json()
        data = body.get("data") if isinstance(body, dict) else None
        hw_id = data.get("hw_id") if isinstance(data, dict) else None
        if not isinstance(hw_id, str) or not valid_device_id(hw_id):
            raise HttpError(422, "bad hw_id", {"errors": {"hw_id": ["is not a valid device id"]}})
        secret = self.plugin.register(hw_id, realm.name, data.get("initial_introspection"))
        if secret is None:
            raise HttpError(
                422, "registered", {"errors": {"hw_id": ["device already registered"]}}
            )
        return Response(201, {"data": {"credentials_secret": secret}})

    async def unregister(self, req):
        realm = self._agent(req, "agent/devices/" + req.params["id"])
        if not self.plugin.unregister(req.params["id"], realm.name):
            raise _err(404, "device not found")
        return Response(204)

    # -- device -------------------------------------------------------------------------------

    def _device(self, req):
        self._realm(req)
        dev = self.plugin.find(req.params["id"], req.params["realm"])
        secret = req.bearer() or ""
        if dev is None or dev.secret is None or not hmac.compare_digest(secret, dev.secret):
            raise _err(401, "bad credentials secret")  # unknown device or wrong secret alike
        dev.secret_used = True
        return dev

    async def info(self, req):
        dev = self._device(req)
        # The broker is where the device found the pairing API (the Host header).
        host = req.headers.get("host", "")
        host = host.rsplit(":", 1)[0] if host.count(":") == 1 or "]:" in host else host
        url = "mqtts://%s:%d/" % (host or self.plugin.host(), self.plugin.mqtt_port())
        return {
            "data": {
                "version": "1.2.0",
                "status": "confirmed" if dev.connects else "pending",
                "protocols": {"astarte_mqtt_v1": {"broker_url": url}},
            }
        }

    async def credentials(self, req):
        dev = self._device(req)
        knobs = self.plugin.front.knobs
        if knobs.astarte_refuse_credentials:
            raise _err(403, "credentials emission inhibited (knob)")
        data = (req.json() or {}).get("data") or {}
        pem = data.get("csr")
        if not isinstance(pem, str):
            raise _err(422, "data.csr (a PEM CSR) needed")
        try:
            csr = x509.load_pem_x509_csr(pem.encode())
        except ValueError as exc:
            raise _err(422, "the CSR does not parse: %s" % exc)
        if not csr.is_signature_valid:
            raise _err(422, "the CSR's signature does not verify")
        cn = [a.value for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        want = "%s/%s" % (dev.realm, dev.id)
        if cn != [want]:
            # Astarte would override the CN; a device sending another one has a bug.
            raise _err(422, "the CSR's CN must be %r, got %r" % (want, cn))
        cert = self.issue(want, csr.public_key())
        dev.certs[cert.serial_number] = cert.not_valid_after_utc
        self.plugin.front.event(
            dev.id,
            "credentials",
            "certificate %x until %s" % (cert.serial_number, cert.not_valid_after_utc),
            self.plugin.name,
        )
        body = cert.public_bytes(serialization.Encoding.PEM).decode()
        return Response(201, {"data": {"client_crt": body}})

    def issue(self, cn, public_key):
        ca = self.plugin.front.ca
        knobs = self.plugin.front.knobs
        now = _now().replace(microsecond=0)
        if knobs.astarte_expired_certs:
            start, end = now - datetime.timedelta(hours=2), now - datetime.timedelta(minutes=1)
        else:
            start = now - datetime.timedelta(minutes=5)  # a device clock a little behind
            end = now + datetime.timedelta(seconds=float(knobs.astarte_cert_validity_s))
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(ca.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
            )
            .sign(ca.key, hashes.SHA256())
        )

    async def verify(self, req):
        dev = self._device(req)
        data = (req.json() or {}).get("data") or {}
        pem = data.get("client_crt") or data.get("client_certificate")
        now = _now()
        out = {"valid": False, "timestamp": now.isoformat()}
        if not isinstance(pem, str):
            raise _err(422, "data.client_crt (a PEM certificate) needed")
        cause, details = self.check_certificate(dev, pem, now)
        if cause is None:
            cert = x509.load_pem_x509_certificate(pem.encode())
            out.update(valid=True, until=cert.not_valid_after_utc.isoformat())
        else:
            out.update(cause=cause, details=details)
        self.plugin.front.event(dev.id, "verify", cause or "valid", self.plugin.name)
        return {"data": out}

    def check_certificate(self, dev, pem, now):
        """(None, None) when valid, else (cause, details) as Astarte's verify names them."""
        try:
            cert = x509.load_pem_x509_certificate(pem.encode())
        except ValueError as exc:
            return "INVALID_ENCODING", str(exc)
        try:
            cert.verify_directly_issued_by(self.plugin.front.ca.cert)
        except Exception as exc:  # a foreign issuer or a bad signature
            return "INVALID_ISSUER", repr(exc)
        cn = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        if cn != ["%s/%s" % (dev.realm, dev.id)]:
            return "INVALID_COMMON_NAME", "CN %r" % cn
        if cert.serial_number in dev.revoked:
            return "REVOKED", "revoked by the test"
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            return "EXPIRED", "valid %s .. %s" % (
                cert.not_valid_before_utc,
                cert.not_valid_after_utc,
            )
        return None, None


def valid_device_id(text):
    """22 base64url characters that decode to 16 bytes (a 128-bit id)."""
    if not _ID_RE.match(text):
        return False
    try:
        return len(base64.urlsafe_b64decode(text + "==")) == 16
    except (binascii.Error, ValueError):
        return False


def new_secret():
    return base64.b64encode(secrets.token_bytes(32)).decode()
