"""The device certificate of DeviceMqtt (protocols.md §5.2): loaded by the pairing stage
only, and on a board dropped again with it (the connection needs the RAM).

- stage(d): a certificate the broker should take and the broker's address. The key and
  CSR are made once on the device and kept (`<persistency_dir>/<device_id>/crypto/`:
  device.key, device.csr, device.crt); a new certificate (the credentials call with the kept
  CSR, then verify) when there is none, when the broker refused the last attempt, when
  verify says no (the object's first connect, after a failed attempt), or in its last
  quarter (a planned reconnect brings it there: DeviceMqtt's credentials). When the pairing
  API cannot be reached on a reconnect, the stored certificate is tried anyway (the SDK's
  paho thread dies there).
- Api: the pairing API's calls; Pairing: key, CSR, certificate, verify, broker URL;
  cert_validity(pem); parse_broker_url(url).
"""

import os

from tether import log
from tether.astarte.errors import APIError, AuthorizationError, DeviceAlreadyRegisteredError
from tether.astarte.pem import creds, native_context, pem_ders, read_ca
from tether.astarte.properties import makedirs
from tether.compat import MICROPYTHON, build_once, ticks_ms

_log = log.getLogger("astarte")


class Api:
    """The pairing API's calls for one base URL (one TLS context, built at the first call)."""

    def __init__(self, base_url, ca=None, insecure=False, timeout_ms=30000):
        self.base = base_url.rstrip("/") + "/v1/"
        self.ca = read_ca(ca)
        self.insecure = insecure
        self.timeout_ms = timeout_ms
        self._ssl = None

    def _kw(self, token):
        kw = {"headers": {"Authorization": "Bearer " + token}, "timeout_ms": self.timeout_ms}
        ctx = self.context()
        if ctx is not None:
            kw["ssl"] = ctx
        return kw

    def context(self):
        """The TLS context of an https:// base URL (built once, until release())."""
        if self._ssl is None and self.base.startswith("https:"):
            self._ssl = self._new_context()
        return self._ssl

    def _new_context(self):
        if MICROPYTHON and (self.ca or self.insecure):
            ctx = native_context(self.ca, insecure=self.insecure)
            if ctx is not None:
                return ctx
        from tether import tlsctx

        return tlsctx.client_context(cadata=self.ca, insecure=self.insecure)

    def release(self):
        """Drop the TLS context until the next call: between connects the RAM is the MQTT
        connection's (a board's heap holds one TLS context comfortably, not two)."""
        self._ssl = None
        if MICROPYTHON:  # CPython frees it by reference counting; a full collection there
            import gc  # costs 10-100 ms of the connect (the whole heap is walked)

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


class Pairing:
    """The device's credentials: key (made here once), CSR (kept with it), certificate,
    broker address. Made per pairing stage from the files (DeviceMqtt keeps no pairing code
    loaded between connects)."""

    def __init__(self, device_id, realm, secret, api, crypto_dir, se_key=None):
        self.device_id = device_id
        self.realm = realm
        self.secret = secret
        self.api = api
        self.dir = crypto_dir
        # se_key: (key, key_cert, se) of a P-256 key inside an SE05x (`se05x:token=...`;
        # its public key from key_cert, as tether.signer.SE05xSigner reads it): the CSR is
        # signed by the chip and no key file is written.
        self.se_key = se_key
        makedirs(crypto_dir)
        self.key_path = crypto_dir + "/device.key"
        self.cert_path = crypto_dir + "/device.crt"
        self.csr_path = crypto_dir + "/device.csr"
        self.key_pem = None if se_key else _read(self.key_path)
        self.cert_pem = _read(self.cert_path)
        has_key = se_key or self.key_pem is not None
        self.csr_pem = _read(self.csr_path) if has_key else None
        self.counts = {"keys": 0, "csrs": 0, "certificates": 0, "verifies": 0}

    def _dev(self):
        return "%s/devices/%s" % (self.realm, self.device_id)

    def make_csr(self):
        """The CSR (CN={realm}/{device_id}, O=Devices) for the kept key, made once (a new
        key the very first time) and kept in flash: a renewal needs no crypto code."""
        if self.csr_pem is not None:
            return self.csr_pem
        from tether.csr import make_pem
        from tether.keys import generate_p256

        if self.se_key:
            key, cert, se = self.se_key
            k = creds("key " + key).load_signer(key, se=se, cert=cert)
        elif self.key_pem is None:
            k = generate_p256()
            pem = k.to_pem()
            self.key_pem = pem.encode() if isinstance(pem, str) else pem
            _write(self.key_path, self.key_pem)
            self.counts["keys"] += 1
        else:
            k = _own_key(self.key_pem)
        csr = make_pem(k, [("CN", self.realm + "/" + self.device_id), ("O", "Devices")])
        self.csr_pem = csr.encode() if isinstance(csr, str) else csr
        _write(self.csr_path, self.csr_pem)
        self.counts["csrs"] += 1
        return self.csr_pem

    async def obtain_certificate(self):
        """The credentials call with the kept CSR; the certificate is kept in flash."""
        csr = self.make_csr().decode()
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

    async def broker(self):
        """(host, port) of the MQTT broker from the transport information."""
        r = await self.api.call("GET", self._dev(), self.secret)
        try:
            url = r["data"]["protocols"]["astarte_mqtt_v1"]["broker_url"]
        except (KeyError, TypeError):
            raise APIError("transport information without astarte_mqtt_v1.broker_url")
        return parse_broker_url(url)


# SEC1 ECPrivateKey as tether.keys.P256Key.to_der writes it: version 1, d (32 bytes), the
# curve P-256, the public point (65 bytes) last
_SEC1_HEAD = b"\x30\x77\x02\x01\x01\x04\x20"
_SEC1_MID = b"\xa0\x0a\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07\xa1\x44\x03\x42\x00"


def _own_key(pem):
    # The key file this module wrote, read without tether.keyload (a board image leaves
    # the key loaders out: the layout is fixed); any other key goes to load_private_key.
    from tether.keys import P256Key, load_private_key

    try:
        b = pem_ders(pem.encode() if isinstance(pem, str) else pem)[0]
    except (ValueError, IndexError):
        b = b""
    if len(b) == 121 and b[:7] == _SEC1_HEAD and b[39:56] == _SEC1_MID:
        return P256Key(int.from_bytes(b[7:39], "big"), b[56:])
    return load_private_key(pem)


def _time(buf, tag, s, e):
    # UTCTime YYMMDDHHMMSSZ (years 1950-2049) or GeneralizedTime YYYYMMDDHHMMSSZ: Unix s
    t = bytes(buf[s:e]).decode()
    if tag == 0x17:
        y = int(t[:2])
        t = ("19" if y >= 50 else "20") + t
    y, mo, d = int(t[:4]), int(t[4:6]), int(t[6:8])
    h, mi, sec = int(t[8:10]), int(t[10:12]), int(t[12:14])
    # days from 1970-01-01 (Howard Hinnant's days_from_civil): no port's mktime epoch
    if mo <= 2:
        y -= 1
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (mo + (-3 if mo > 2 else 9)) + 2) // 5 + d - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    return days * 86400 + h * 3600 + mi * 60 + sec


def _tlv(buf, pos):
    # (tag, value start, value end) of the DER item at pos (a few lines, not tether.der:
    # this runs at the pairing stage's peak, next to HTTPS)
    n = buf[pos + 1]
    s = pos + 2
    if n & 0x80:
        k = n & 0x7F
        n = int.from_bytes(bytes(buf[s : s + k]), "big")
        s += k
    if s + n > len(buf):
        raise ValueError("DER item past the end")
    return buf[pos], s, s + n


def cert_validity(cert_pem):
    """(not_before, not_after) of a PEM certificate, Unix seconds (ValueError if it does
    not parse)."""
    try:
        buf = pem_ders(cert_pem)[0]
        s = _tlv(buf, 0)[1]  # Certificate
        s = _tlv(buf, s)[1]  # tbsCertificate
        if buf[s] == 0xA0:  # [0] version
            s = _tlv(buf, s)[2]
        for _ in range(3):  # serial, signature algorithm, issuer
            s = _tlv(buf, s)[2]
        s = _tlv(buf, s)[1]  # validity
        a = _tlv(buf, s)
        b = _tlv(buf, a[2])
        return _time(buf, *a), _time(buf, *b)
    except (IndexError, TypeError):
        raise ValueError("certificate does not parse")


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


def _refused(s):
    # The last attempt reached the broker, which did not take it: TLS refused (a
    # certificate it does not trust or an expired one; with TLS 1.3 that shows as the
    # connection closing before CONNACK) or CONNACK 4/5 (bad credentials, not authorized).
    if s.last_failed_stage not in ("tls", "mqtt"):
        return False
    exc = s.last_error
    return type(exc).__name__ != "MQTTConnectError" or getattr(exc, "code", 5) in (4, 5)


def _clock():
    from tether.hal import clock

    return clock.unix_time() if clock.is_sane() else None


async def stage(d):
    s = d.session
    first = d._stage_connects < 0
    linked = not first and d._stage_connects != s.connects  # connected since the last stage
    d._stage_connects = s.connects
    if linked:
        d._cert_fresh = False  # the broker took it once
    refused = not first and not linked and _refused(s)
    if d.ignore_ssl_errors:
        _log.warning("ignore_ssl_errors: TLS certificates are NOT verified (tests only)")
    p = d.pairing = Pairing(d.device_id, d.realm, d._secret, d._api(), d._crypto, d._se_key)
    if p.csr_pem is None:
        # The TLS context first: mbedTLS wants a few KB in one piece, easier to find before
        # the key generation has cut the heap up. Then the key and CSR, whose modules go
        # again before HTTPS needs the RAM.
        p.api.context()
        build_once(p.make_csr)
    old = p.cert_pem
    now = _clock()
    life = None
    due = False  # a renewal was wanted
    try:
        if old is not None and now is not None:
            life = cert_validity(old)
    except ValueError:  # a certificate that does not parse: ask for a new one
        d._cert_bad = True
    try:
        if old is None:
            await p.obtain_certificate()
            d._cert_fresh = True
        elif d._cert_bad or (refused and not d._cert_fresh):
            due = True
            _log.warning("device certificate refused or invalid: asking for a new one")
            await _renew(d, p)
        elif life is not None and life[1] - now < (life[1] - life[0]) // 4:
            due = True
            _log.info("device certificate expires in %d s: asking for a new one", life[1] - now)
            await _renew(d, p)
        elif (first or not linked) and not await p.verify():
            due = d._cert_bad = True
            _log.warning("device certificate no longer valid: asking for a new one")
            await _renew(d, p)
        if first or not d.server:
            d.server, d.port = await p.broker()
    except (OSError, APIError, AuthorizationError) as exc:
        if first or p.cert_pem is None or not d.server or d._cert_bad:
            raise
        # The pairing API is down (or refuses) but the broker may not: try what we have.
        _log.warning("pairing API failed (%s): connecting with the stored certificate", exc)
    finally:
        p.api.release()
    d._key_pem, d._cert_pem = p.key_pem, p.cert_pem
    # How long this certificate lasts, for the planned reconnect that renews it in time
    # (DeviceMqtt's credentials). A renewal that was due and could not be made (the
    # fallback above) plans nothing: no reconnect storm with a certificate running out.
    d._cert_left = None
    if now is not None and p.cert_pem is not old:
        life = cert_validity(p.cert_pem)
        due = False
    if life is not None and not due:
        d._cert_left = (life[1] - now, ticks_ms())
    m = d.mqtt
    if m is not None:
        # The base makes its one MQTT client (and TLS context) at the first connect; a new
        # certificate or broker address is put into it here (the base has no seam for it).
        m.port = d.port
        m._server_hostname = d.server
        if p.cert_pem is not old:
            m._ssl = d.tls_context()  # tether.cloud.tls on a board: nothing of tlsctx stays


async def _renew(d, p):
    # The credentials call with the kept key and CSR, then verify the new certificate. The
    # API unreachable: the old certificate stays (not known bad unless verify said so: a
    # certificate in its last quarter still connects). A new one that verify refuses is
    # bad: APIError, backoff, and a renewal again at the next attempt.
    await p.obtain_certificate()
    d._cert_bad = False
    d._cert_fresh = True
    if not await p.verify():
        d._cert_bad = True
        raise APIError("the new device certificate does not verify")
