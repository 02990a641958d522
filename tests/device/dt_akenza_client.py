"""tether.akenza on both interpreters, against a scripted broker (akenza_broker.py): the
login and the JWT in it (ES256 and RS256, kid = the key's fingerprint, verified here with
the public key), uplinks and downlinks on akenza's topics, a refused login that names what
was sent, keys refused before connecting, a malformed-downlink corpus, uplink-secret mode,
store-and-forward across a reboot, and the firmware profile."""

import asyncio
import json
import os
from hashlib import sha256

import key_vectors as kv
from akenza_broker import AkenzaBroker, fast, stop, until
from harness import raises, run
from tether import keys, p256
from tether.akenza import AkenzaClient, JwtCredentials
from tether.compat import ticks_diff, ticks_ms
from tether.encoding import b64url_decode
from tether.errors import CredentialError

DEV = "dev-1"
NOW = 1796000000  # 2026-11-29


def _tmpdir():
    name = "/tmp/tether-dt-akenza-" + "".join("%02x" % b for b in os.urandom(6))
    os.mkdir(name)
    return name


def _rmtree(path):
    for name in os.listdir(path):
        p = path + "/" + name
        try:
            os.remove(p)
        except OSError:
            _rmtree(p)
    os.rmdir(path)


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return path


def _parts(token):
    h, c, s = token.split(".")
    return (
        json.loads(b64url_decode(h)),
        json.loads(b64url_decode(c)),
        b64url_decode(s),
        (h + "." + c).encode(),
    )


def _verify(token, signer):
    """Check the signature with the public key alone (p256 / RSA arithmetic)."""
    header, claims, sig, signed = _parts(token)
    digest = sha256(signed).digest()
    if header["alg"] == "ES256":
        assert len(sig) == 64  # raw R||S, never DER
        pt = signer.public_point()
        x = int.from_bytes(pt[1:33], "big")
        y = int.from_bytes(pt[33:], "big")
        r = int.from_bytes(sig[:32], "big")
        s = int.from_bytes(sig[32:], "big")
        assert p256.verify_digest(x, y, digest, r, s)
    else:
        n, e = signer.n, signer.e
        k = len(signer.sign(b"x"))  # MicroPython ints have no bit_length()
        assert len(sig) == k
        em = pow(int.from_bytes(sig, "big"), e, n).to_bytes(k, "big")
        prefix = bytes.fromhex("3031300d060960864801650304020105000420")
        want = b"\x00\x01" + b"\xff" * (k - 3 - len(prefix) - 32) + b"\x00" + prefix + digest
        assert em == want
    return header, claims


def _client(broker, **kw):
    kw.setdefault("key", kv.P256_SEC1)
    kw.setdefault("tls", False)
    return fast(AkenzaClient(DEV, **kw), broker)


def test_es256_and_rs256_tokens_carry_the_claims_and_the_kid_of_the_key():
    for der, alg in ((kv.P256_SEC1, "ES256"), (kv.RSA_PKCS1, "RS256")):
        signer = keys.load_private_key(der)
        creds = JwtCredentials(DEV, signer, lifetime_s=300)
        user, token = creds.mint(NOW)
        header, claims = _verify(token, signer)
        assert user == "unused"
        assert header == {"alg": alg, "typ": "JWT", "kid": creds.kid}, header
        spki = signer.public_key_der()
        assert creds.kid == "".join("%02x" % b for b in sha256(spki).digest())
        assert claims == {"iat": NOW, "exp": NOW + 300, "aud": "https://akenza.io/devices/dev-1"}
        assert creds.expires_at == NOW + 300
    # the fixed P-256 key: its kid is known independently (key_vectors, from `cryptography`)
    c = JwtCredentials(DEV, keys.load_private_key(kv.P256_PKCS8), audience="https://x.io/d")
    assert c.kid == kv.P256_FINGERPRINT
    assert _parts(c.mint(NOW)[1])[1]["aud"] == "https://x.io/d"


def test_tokens_are_the_ones_tether_jwt_makes():
    # JwtCredentials writes the JWS itself (no tether.jwt import at a renewal): the same
    # header bytes, claims and (ES256: RFC 6979, deterministic) signature as tether.jwt.
    from tether import jwt
    from tether.akenza import load_signer

    for der in (kv.P256_SEC1, kv.RSA_PKCS1):
        # load_signer: on MicroPython the slim signer (tether.keys dropped again)
        for signer in (keys.load_private_key(der), load_signer(der)):
            for kid in (None, ""):
                creds = JwtCredentials(DEV, signer, audience='https://a.io/"q"/d', kid=kid)
                token = creds.mint(NOW)[1]
                claims = {"iat": NOW, "exp": NOW + 1200, "aud": 'https://a.io/"q"/d'}
                headers = {"kid": creds.kid} if creds.kid else None
                ref = jwt.encode(claims, signer, headers=headers)
                assert token.split(".")[0] == ref.split(".")[0], (token, ref)
                assert _parts(token)[:2] == _parts(ref)[:2]
                if ref.split(".")[1] == token.split(".")[1]:  # same claim order (CPython)
                    assert token == ref
                _verify(token, keys.load_private_key(der))
    assert "kid" not in _parts(JwtCredentials(DEV, signer, kid="").mint(NOW)[1])[0]


def test_no_token_before_2020_and_a_key_that_cannot_sign_the_algorithm():
    creds = JwtCredentials(DEV, keys.load_private_key(kv.P256_SEC1))
    for unset in (0, 946684800 + 5):  # 1970 and 2000: a board without a battery
        e = raises(CredentialError, creds.mint, unset)
        assert "clock is not set" in str(e)
    assert creds.expires_at is None
    e = raises(CredentialError, JwtCredentials, DEV, keys.load_private_key(kv.RSA_PKCS1), None,
               1200, "unused", "ES256")  # fmt: skip
    assert "the key signs RS256, but algorithm ES256" in str(e)


def test_connect_uplinks_on_akenza_topics_and_downlinks_decoded():
    broker = AkenzaBroker()
    got = []
    client = _client(broker, on_downlink=lambda c, sub, payload: got.append((sub, payload)))

    async def body():
        client.send({"early": 1})  # queued before the connection exists
        tasks = [asyncio.create_task(client.run()), asyncio.create_task(broker.serve())]
        assert await until(lambda: client.connected, 3000), client.stats()
        await client.publish({"temperature": 22})
        await client.publish({"door": "open"}, topic="alerts/front")
        assert await client.flush(3000)
        broker.down("/down/device/id/dev-1/commands", '{"led": true}')
        broker.down("/down/device/id/dev-1", b"\x00raw")
        assert await until(lambda: len(got) == 2, 3000), got
        await client.publish("/diag/dev-1", "raw text", 0)  # the base's raw publish seam
        assert await until(lambda: len(broker.up) == 4, 3000)
        await stop(client, tasks)

    run(body())
    cid, user, token = broker.logins[0]
    assert (cid, user) == (DEV, "unused")
    header, claims = _verify(token, keys.load_private_key(kv.P256_SEC1))
    assert header["kid"] == kv.P256_FINGERPRINT
    assert claims["aud"] == "https://akenza.io/devices/dev-1"
    assert claims["exp"] - claims["iat"] == 1200
    assert broker.subs == ["/down/device/id/dev-1/#"]
    assert broker.up == [
        ("/up/device/id/dev-1", b'{"early": 1}'),
        ("/up/device/id/dev-1", b'{"temperature": 22}'),
        ("/up/device/id/dev-1/alerts/front", b'{"door": "open"}'),
        ("/diag/dev-1", b"raw text"),
    ]
    assert got == [("commands", {"led": True}), ("", b"\x00raw")]
    c = client.counters
    assert (c["queued"], c["uplinks"], c["downlinks"], c["dropped"]) == (3, 3, 2, 0)


def test_publish_refuses_what_is_not_an_uplink():
    client = AkenzaClient(DEV, key=kv.P256_SEC1, tls=False)
    raises(TypeError, client.send, [1, 2])
    raises(TypeError, client.send, "text")
    raises(ValueError, client.send, {"a": 1}, "x/+/y")
    raises(ValueError, client.send, {"a": 1}, "#")
    assert client.pending == 0 and client.counters["queued"] == 0


def test_a_refused_login_says_what_was_sent():
    broker = AkenzaBroker()
    broker.refuse = 5
    client = _client(broker, audience="https://private.example/devices/dev-1")

    async def body():
        tasks = [asyncio.create_task(client.run()), asyncio.create_task(broker.serve())]
        assert await until(lambda: client.session.failures >= 2, 3000), client.stats()
        await stop(client, tasks)

    run(body())
    exc = client.session.last_error
    msg = str(exc)
    assert exc.code == 5 and type(exc).__name__ == "TokenRefused", repr(exc)
    assert "CONNACK 5" in msg and "dev-1" in msg
    for claim in ("aud 'https://private.example/devices/dev-1'", "kid " + kv.P256_FINGERPRINT,
                  "iat ", "exp "):  # fmt: skip
        assert claim in msg, (claim, msg)
    assert client.session.failures_by_stage.get("mqtt", 0) >= 2
    assert "eyJ" not in msg  # never the token itself
    assert len(broker.logins) >= 2  # it keeps trying (the key may be registered later)


def test_a_wrong_key_is_refused_before_connecting():
    d = _tmpdir()
    try:
        pem = b"-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n"
        pub = _write(d + "/pub.pem", pem + b"-----END PUBLIC KEY-----\n")
        junk = _write(d + "/junk.der", b"\x30\x03\x02\x01\x05")
        cases = (
            (pub, "key file " + pub + ": no PRIVATE KEY block"),
            (junk, "key file " + junk + ": key is corrupt"),
            (d + "/missing.der", "key file " + d + "/missing.der cannot be read"),
            (kv.P384_PKCS8, "P-256"),
            (kv.ED25519_PKCS8, "key"),
        )
        for key, want in cases:
            e = raises(CredentialError, AkenzaClient, DEV, key=key, tls=False)
            assert want in str(e), (want, str(e))
        e = raises(CredentialError, AkenzaClient, DEV, key=kv.RSA_PKCS1, algorithm="ES256",
                   tls=False)  # fmt: skip
        assert "algorithm ES256" in str(e)
        e = raises(ValueError, AkenzaClient, DEV, tls=False)
        assert "key missing" in str(e)
    finally:
        _rmtree(d)


def test_malformed_downlinks_leave_the_connection_up_and_the_next_one_arrives():
    broker = AkenzaBroker()
    got = []

    def handler(client, sub, payload):
        if sub == "boom":
            raise RuntimeError("app bug")
        got.append((sub, payload))

    client = _client(broker)
    client.on_downlink = handler  # handlers are attributes too, as in the SDKs
    base = "/down/device/id/dev-1"
    corpus = (
        (base + "/a", b""),  # empty
        (base + "/b", b"{"),  # truncated JSON
        (base + "/c", b"\xff\xfe\x00"),  # not UTF-8
        (base + "/d", b"[" * 3000),  # nesting no parser should follow
        (base + "/e", b'{"a": 1} trailing'),
        (base + "/boom", b"{}"),  # the handler raises
        (base + "/big", b"x" * (AkenzaClient.MAX_PACKET + 100)),  # larger than accepted
        (base + "/\xc3\xa9t\xc3\xa9", b"1e999"),
    )

    async def body():
        tasks = [asyncio.create_task(client.run()), asyncio.create_task(broker.serve())]
        assert await until(lambda: client.connected, 3000)
        for topic, payload in corpus:
            broker.down(topic, payload)
        broker.down(base + "/last", '{"ok": 1}')
        assert await until(lambda: got and got[-1][0] == "last", 5000), got
        assert client.connected
        await client.publish({"after": 1})
        assert await client.flush(3000)
        await stop(client, tasks)

    run(body())
    subs = [s for s, _ in got]
    assert subs[:5] == ["a", "b", "c", "d", "e"] and subs[-1] == "last", subs
    assert got[-1][1] == {"ok": 1}
    for sub, payload in got[:4]:  # not JSON: the raw bytes
        assert isinstance(payload, bytes), (sub, payload)
    assert "big" not in subs
    assert client.counters["callback_errors"] == 1
    assert client.session.connects == 1 and client.counters["reconnects"] == 0
    assert broker.up[-1] == ("/up/device/id/dev-1", b'{"after": 1}')


def test_sync_mode_delivers_uplinks_and_downlinks():
    broker = AkenzaBroker()
    served = []

    async def open_connection(*args, **kw):
        if not served:  # on the loop that connects: sync mode makes its own
            served.append(asyncio.create_task(broker.serve()))
        return await broker.b.open_connection(*args, **kw)

    got = []
    client = _client(broker, sync_mode=True)
    client.on_downlink = lambda c, sub, payload: got.append((sub, payload))
    client.open_connection = open_connection
    client.start()  # returns once connected
    try:
        assert client.connected
        for i in range(3):
            client.send({"i": i})
        broker.down("/down/device/id/dev-1/cfg", '{"a": 1}')
        t0 = ticks_ms()
        while (client.pending or not got) and ticks_diff(ticks_ms(), t0) < 5000:
            client.update()
    finally:
        for t in served:
            t.cancel()
        client.stop()  # runs the loop until the session ended
    assert [json.loads(bytes(p)) for _, p in broker.up] == [{"i": i} for i in range(3)]
    assert got == [("cfg", {"a": 1})]
    assert client.session.state == "stopped"


def test_uplink_secret_mode():
    broker = AkenzaBroker()
    client = fast(AkenzaClient(DEV, connector_id="conn-1", secret="s3cret", tls=False), broker)

    async def body():
        tasks = [asyncio.create_task(client.run()), asyncio.create_task(broker.serve())]
        assert await until(lambda: client.connected, 3000)
        await client.publish({"n": 1})
        await client.publish({"n": 2}, "env")
        assert await client.flush(3000)
        await stop(client, tasks)

    run(body())
    assert broker.logins == [(DEV, "conn-1", "s3cret")]
    assert broker.subs == []  # the downlink topic of this mode is UNCONFIRMED
    assert broker.up == [("/up/s3cret/id/dev-1", b'{"n": 1}'),
                         ("/up/s3cret/id/dev-1/env", b'{"n": 2}')]  # fmt: skip
    raises(ValueError, AkenzaClient, DEV, connector_id="conn-1", tls=False)
    raises(ValueError, AkenzaClient, DEV, key=kv.P256_SEC1, secret="x", tls=False)


def test_uplinks_made_during_an_outage_are_delivered_once_after_it():
    broker = AkenzaBroker()
    client = _client(broker)

    async def body():
        tasks = [asyncio.create_task(client.run()), asyncio.create_task(broker.serve())]
        assert await until(lambda: client.connected, 3000)
        await client.publish({"i": 0})
        assert await client.flush(3000)
        broker.b.send_eof()  # the broker goes away
        assert await until(lambda: not client.connected, 2000)
        for i in (1, 2, 3):
            await client.publish({"i": i})  # queued while offline
        assert client.pending == 3
        assert await client.flush(5000)  # after the reconnect, each PUBACKed
        await stop(client, tasks)

    run(body())
    assert [json.loads(bytes(p)) for _, p in broker.up] == [{"i": i} for i in range(4)]
    assert client.counters["reconnects"] == 1 and len(broker.logins) == 2
    assert broker.subs == ["/down/device/id/dev-1/#"] * 2


def test_uplinks_queued_offline_survive_a_reboot_with_a_store():
    from tether.store import Store

    d = _tmpdir()
    try:
        store = Store(d + "/q")
        first = AkenzaClient(DEV, key=kv.P256_SEC1, tls=False, store=store)
        for i in range(5):
            first.send({"i": i}, "t" if i % 2 else None)
        assert first.pending == 5
        store.close()  # power cut: nothing was ever connected

        broker = AkenzaBroker()
        second = _client(broker, store=Store(d + "/q"))

        async def body():
            tasks = [asyncio.create_task(second.run()), asyncio.create_task(broker.serve())]
            assert await until(lambda: len(broker.up) == 5, 3000), broker.up
            await second.publish({"i": 5})
            assert await second.flush(3000)
            await stop(second, tasks)

        run(body())
        topics = ["/up/device/id/dev-1" + ("/t" if i % 2 else "") for i in range(5)]
        topics.append("/up/device/id/dev-1")
        assert broker.up == [(topics[i], b'{"i": %d}' % i) for i in range(6)]
        assert second.store.depth == 0
        second.store.close()
    finally:
        _rmtree(d)


def test_without_a_store_the_queue_is_bounded():
    client = AkenzaClient(DEV, key=kv.P256_SEC1, tls=False)
    client.QUEUE_MAX = 3
    for i in range(5):
        client.send({"i": i})
    assert client.pending == 3 and client.counters["dropped"] == 2
    assert [p for _, p in client._queue] == [b'{"i": 2}', b'{"i": 3}', b'{"i": 4}']


def test_firmware_profile():
    from tether.akenza.profile import make_client

    d = _tmpdir()
    try:
        _write(d + "/ec_private.der", kv.P256_SEC1)
        settings = {
            "_dir": d,
            "cloud": "akenza",
            "device_id": DEV,
            "credentials": {"key": "ec_private.der"},
            "akenza": {"token_lifetime_s": 600, "tls": False},
            "server": "127.0.0.1",
            "port": 1884,
            "keepalive": 30,
        }
        c = make_client(settings)
        assert (c.client_id, c.server, c.port, c.keepalive) == (DEV, "127.0.0.1", 1884, 30)
        assert c.credentials.kid == kv.P256_FINGERPRINT
        assert c.credentials.lifetime_s == 600
        assert c.credentials.needs_time
        settings["credentials"] = {"key": "nope.der"}
        e = raises(CredentialError, make_client, settings)
        assert "nope.der cannot be read" in str(e)
        settings["credentials"] = {}
        e = raises(ValueError, make_client, settings)
        assert "credentials.key missing" in str(e)
        settings["akenza"]["connector_id"] = "conn-1"
        e = raises(ValueError, make_client, settings)
        assert "connector_secret" in str(e)
        settings["_secrets"] = {"connector_secret": "s3"}
        c = make_client(settings)
        assert (c.username, c._password, c.credentials) == ("conn-1", "s3", None)
    finally:
        _rmtree(d)
