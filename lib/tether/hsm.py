"""CPython only: TLS client authentication with the private key inside a PKCS#11 token.

The key never leaves the token (a hardware security module, a smart card, SoftHSM2 for
tests): OpenSSL signs the handshake through the PKCS#11 engine (Debian
`libengine-pkcs11-openssl`, i.e. OpenSC's libp11) and the token's own PKCS#11 module.

    ctx = hsm.client_context(cadata=ca_der, cert="pkcs11:token=tether;object=device",
                             key="pkcs11:token=tether;object=device;type=private",
                             module_path="/usr/lib/softhsm/libsofthsm2.so", pin="1234")
    client = MQTTClient(..., ssl=ctx, server_hostname="broker.example")

or through tether.creds.tls_context(key="pkcs11:...") (what the firmware and the Arduino
client's ssl_params use). `TokenKey(uri, ...)` signs arbitrary messages with a token key
(tether.signer.Pkcs11Signer).

How: the context is an ordinary `ssl.SSLContext`, so asyncio, the MQTT client and every
verification setting of tether.tlsctx work unchanged. CPython's ssl module has no API for
an engine key, so this module reaches the context's OpenSSL `SSL_CTX` through ctypes and
calls `SSL_CTX_use_PrivateKey` with the key the engine returns. That relies on two things
it checks before touching anything (HSMError otherwise): ctypes finds the very libssl that
CPython's `_ssl` uses (same version number), and the `SSL_CTX` pointer read from the
context object answers like that context (verify mode and options, changed and read back).

Why not M2Crypto, as the older client does: no Linux wheels (it must be compiled with swig,
libssl-dev and the Python headers), and its sockets are blocking, so an asyncio client would
need a thread relaying every byte. Debian 12 ships no OpenSSL 3 pkcs11 provider.

Never logged or put in an exception: the PIN, and a `pin-value` inside a URI.
"""

import ctypes
import ctypes.util
import os
import ssl

from tether import log
from tether.errors import CredentialError

_log = log.getLogger("hsm")

DEFAULT_MODULE_PATH = "/usr/lib/softhsm/libsofthsm2.so"
_OPENSSL_ENGINES_DIR = 5  # OpenSSL_version() selector for ENGINESDIR


class HSMError(CredentialError):
    """The PKCS#11 route cannot work here (engine, module, token, or this CPython)."""


def split_pin(uri):
    """(uri without its pin-value, the pin-value or None).

    The PIN goes to the engine by its own control command, never inside a URI: libp11
    prints a URI it cannot resolve to stderr.
    """
    pin = None
    head, sep, query = uri.partition("?")
    keep = []
    for part in query.replace("&", ";").split(";") if sep else ():
        if part.startswith("pin-value="):
            pin = part[len("pin-value=") :]
        elif part:
            keep.append(part)
    return head + ("?" + "&".join(keep) if keep else ""), pin


def redact(uri):
    """A pkcs11: URI without its pin-value, for messages."""
    return split_pin(uri)[0]


class _LOAD_CERT(ctypes.Structure):  # libp11's LOAD_CERT_CTRL parameter block
    _fields_ = [("s_slot_cert_id", ctypes.c_char_p), ("cert", ctypes.c_void_p)]


class _PySSLContext(ctypes.Structure):  # CPython's _ssl context object: header, then SSL_CTX*
    _fields_ = [
        ("ob_refcnt", ctypes.c_ssize_t),
        ("ob_type", ctypes.c_void_p),
        ("ctx", ctypes.c_void_p),
    ]


class _OpenSSL:
    """The libssl/libcrypto functions used here, from the same copy CPython's ssl uses."""

    def __init__(self):
        names = (("ssl", "libssl.so.3"), ("crypto", "libcrypto.so.3"))
        libs = []
        for short, soname in names:
            path = ctypes.util.find_library(short) or soname
            try:
                libs.append(ctypes.CDLL(path))
            except OSError as exc:
                raise HSMError("cannot load %s: %s" % (path, exc))
        self.ssl, self.crypto = libs
        c, s = self.crypto, self.ssl
        vp, cp, ci, ul = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_ulong
        self._sig(c, "OpenSSL_version_num", ul, [])
        self._sig(c, "OpenSSL_version", cp, [ci])
        self._sig(c, "ENGINE_by_id", vp, [cp])
        self._sig(c, "ENGINE_ctrl_cmd_string", ci, [vp, cp, cp, ci])
        self._sig(c, "ENGINE_ctrl_cmd", ci, [vp, cp, ctypes.c_long, vp, vp, ci])
        self._sig(c, "ENGINE_init", ci, [vp])
        self._sig(c, "ENGINE_free", ci, [vp])
        self._sig(c, "ENGINE_load_private_key", vp, [vp, cp, vp, vp])
        self._sig(c, "EVP_PKEY_free", None, [vp])
        self._sig(c, "X509_free", None, [vp])
        self._sig(c, "ERR_get_error", ul, [])
        self._sig(c, "ERR_error_string_n", None, [ul, cp, ctypes.c_size_t])
        self._sig(c, "ERR_clear_error", None, [])
        self._sig(s, "SSL_CTX_get_verify_mode", ci, [vp])
        self._sig(s, "SSL_CTX_get_options", ctypes.c_uint64, [vp])
        self._sig(s, "SSL_CTX_use_PrivateKey", ci, [vp, vp])
        self._sig(s, "SSL_CTX_use_certificate", ci, [vp, vp])
        self._sig(s, "SSL_CTX_use_certificate_ASN1", ci, [vp, ci, cp])
        self._sig(s, "SSL_CTX_check_private_key", ci, [vp])
        sz = ctypes.c_size_t
        self._sig(c, "EVP_MD_CTX_new", vp, [])
        self._sig(c, "EVP_MD_CTX_free", None, [vp])
        self._sig(c, "EVP_sha256", vp, [])
        self._sig(c, "EVP_DigestSignInit", ci, [vp, vp, vp, vp, vp])
        self._sig(c, "EVP_DigestSign", ci, [vp, cp, ctypes.POINTER(sz), cp, sz])
        self._sig(c, "i2d_PUBKEY", ci, [vp, ctypes.POINTER(vp)])
        # OpenSSL 3 renamed EVP_PKEY_base_id (now a macro) to EVP_PKEY_get_base_id
        self.pkey_id = getattr(c, "EVP_PKEY_get_base_id", None) or c.EVP_PKEY_base_id
        self.pkey_id.restype = ci
        self.pkey_id.argtypes = [vp]
        if c.OpenSSL_version_num() != ssl.OPENSSL_VERSION_NUMBER:
            raise HSMError(
                "ctypes found OpenSSL %#x but CPython's ssl uses %#x (%s)"
                % (c.OpenSSL_version_num(), ssl.OPENSSL_VERSION_NUMBER, ssl.OPENSSL_VERSION)
            )

    @staticmethod
    def _sig(lib, name, restype, argtypes):
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes

    def errors(self):
        """Drain OpenSSL's error queue into one line (CPython's ssl must find it empty)."""
        out = []
        buf = ctypes.create_string_buffer(256)
        while True:
            code = self.crypto.ERR_get_error()
            if not code:
                break
            self.crypto.ERR_error_string_n(code, buf, len(buf))
            out.append(buf.value.decode(errors="replace"))
        return "; ".join(out) or "no OpenSSL error recorded"

    def engines_dir(self):
        text = self.crypto.OpenSSL_version(_OPENSSL_ENGINES_DIR).decode()
        # 'ENGINESDIR: "/usr/lib/x86_64-linux-gnu/engines-3"'
        return text.split('"')[1] if '"' in text else ""


_EVP_PKEY_RSA = 6  # OpenSSL's NID_rsaEncryption
_EVP_PKEY_EC = 408  # NID_X9_62_id_ecPublicKey

_openssl = None
_engines = {}  # (engine_path, module_path) -> ENGINE*, kept for the process lifetime


def _lib():
    global _openssl
    if _openssl is None:
        _openssl = _OpenSSL()
    return _openssl


def default_engine_path():
    d = _lib().engines_dir()
    for name in ("pkcs11.so", "libpkcs11.so"):
        p = os.path.join(d, name)
        if os.path.exists(p):
            return p
    raise HSMError(
        "the PKCS#11 engine is not in %s: install libengine-pkcs11-openssl" % (d or "ENGINESDIR")
    )


def _engine(engine_path, module_path):
    key = (engine_path, module_path)
    e = _engines.get(key)
    if e:
        return e
    lib = _lib()
    c = lib.crypto
    if not os.path.exists(module_path):
        raise HSMError("PKCS#11 module %s not found" % module_path)
    e = c.ENGINE_by_id(b"dynamic")
    if not e:
        raise HSMError("OpenSSL has no dynamic engine loader: %s" % lib.errors())
    steps = [
        (b"SO_PATH", engine_path.encode()),
        (b"ID", b"pkcs11"),
        (b"LIST_ADD", b"0"),  # private instance: another module may use the same engine
        (b"LOAD", None),
        (b"MODULE_PATH", module_path.encode()),
    ]
    for cmd, arg in steps:
        if c.ENGINE_ctrl_cmd_string(e, cmd, arg, 0) != 1:
            what = cmd.decode()
            err = lib.errors()
            c.ENGINE_free(e)
            raise HSMError("PKCS#11 engine %s: setting %s failed: %s" % (engine_path, what, err))
    if c.ENGINE_init(e) != 1:
        err = lib.errors()
        c.ENGINE_free(e)
        raise HSMError("PKCS#11 engine did not initialise: %s" % err)
    _engines[key] = e
    return e


def _ssl_ctx_pointer(ctx):
    """The SSL_CTX* inside a CPython ssl.SSLContext, proven to be that context's."""
    lib = _lib()
    if not isinstance(ctx, ssl.SSLContext):
        raise HSMError("not an ssl.SSLContext")
    raw = _PySSLContext.from_address(id(ctx)).ctx
    ok = bool(raw)
    if ok:
        saved = ctx.verify_mode
        try:
            for mode, flags in ((ssl.CERT_OPTIONAL, 1), (ssl.CERT_REQUIRED, 3)):
                ctx.verify_mode = mode
                ok = ok and lib.ssl.SSL_CTX_get_verify_mode(raw) == flags
            ok = ok and lib.ssl.SSL_CTX_get_options(raw) == int(ctx.options)
        finally:
            ctx.verify_mode = saved
    if not ok:
        raise HSMError("this CPython's ssl.SSLContext layout is not the one tether.hsm knows")
    return raw


def _is_uri(x):
    return isinstance(x, str) and x.startswith("pkcs11:")


def _module(module_path):
    return module_path or os.environ.get("TETHER_PKCS11_MODULE") or DEFAULT_MODULE_PATH


def use_token_key(ctx, key, cert, module_path=None, engine_path=None, pin=None):
    """Make ctx authenticate with the token's key `key` (a pkcs11: URI) and `cert`.

    cert: a pkcs11: URI of the certificate in the token, or DER / PEM bytes.
    """
    lib = _lib()
    key, uri_pin = split_pin(key)
    if _is_uri(cert):
        cert, cert_pin = split_pin(cert)
        uri_pin = uri_pin or cert_pin
    pin = uri_pin if pin is None else pin
    e = _engine(engine_path or default_engine_path(), _module(module_path))
    raw = _ssl_ctx_pointer(ctx)
    c, s = lib.crypto, lib.ssl
    try:
        if pin is not None and c.ENGINE_ctrl_cmd_string(e, b"PIN", str(pin).encode(), 0) != 1:
            raise HSMError("the PKCS#11 engine refused the PIN (value not shown)")
        if _is_uri(cert):
            params = _LOAD_CERT(cert.encode(), None)
            if c.ENGINE_ctrl_cmd(e, b"LOAD_CERT_CTRL", 0, ctypes.byref(params), None, 1) != 1:
                raise HSMError(
                    "certificate %s not found in the token: %s" % (redact(cert), lib.errors())
                )
            done = s.SSL_CTX_use_certificate(raw, params.cert)
            c.X509_free(params.cert)
        else:
            from tether.certs import _der

            der = _der(cert, "cert")
            done = s.SSL_CTX_use_certificate_ASN1(raw, len(der), der)
        if done != 1:
            raise CredentialError("certificate rejected by OpenSSL: %s" % lib.errors())
        pkey = c.ENGINE_load_private_key(e, key.encode(), None, None)
        if not pkey:
            raise HSMError(
                "key %s not found in the token (or wrong PIN): %s" % (redact(key), lib.errors())
            )
        try:
            if s.SSL_CTX_use_PrivateKey(raw, pkey) != 1:
                err = lib.errors()
                if "mismatch" in err:
                    raise CredentialError(
                        "key %s does not match the certificate (%s)" % (redact(key), err)
                    )
                raise CredentialError("token key rejected by OpenSSL: %s" % err)
        finally:
            c.EVP_PKEY_free(pkey)  # the context holds its own reference
        if s.SSL_CTX_check_private_key(raw) != 1:
            raise CredentialError(
                "key %s does not match the certificate: %s" % (redact(key), lib.errors())
            )
    finally:
        c.ERR_clear_error()
    _log.info("TLS client key in PKCS#11 token: %s", redact(key))
    return ctx


def client_context(
    cadata=None, cert=None, key=None, insecure=False, module_path=None, engine_path=None, pin=None
):
    """tlsctx.client_context() with the key (and optionally the cert) in a PKCS#11 token."""
    from tether import tlsctx

    if not _is_uri(key):
        raise CredentialError("key must be a pkcs11: URI here")
    if cert is None:
        raise CredentialError("a token key needs its certificate (pkcs11: URI or DER bytes)")
    ctx = tlsctx.client_context(cadata=cadata, insecure=insecure)
    return use_token_key(ctx, key, cert, module_path, engine_path, pin)


class TokenKey:
    """A private key in a PKCS#11 token that signs SHA-256 messages (tether.signer.Pkcs11Signer).

    algorithm: "ES256" (EC; sign() returns OpenSSL's DER ECDSA-Sig-Value) or "RS256"
    (PKCS#1 v1.5). public_key_der(): SubjectPublicKeyInfo DER, as the token reports it.
    """

    def __init__(self, uri, module_path=None, pin=None, engine_path=None):
        lib = _lib()
        c = lib.crypto
        uri, uri_pin = split_pin(uri)
        pin = uri_pin if pin is None else pin
        self.uri = uri
        self._pkey = None
        e = _engine(engine_path or default_engine_path(), _module(module_path))
        try:
            if pin is not None and c.ENGINE_ctrl_cmd_string(e, b"PIN", str(pin).encode(), 0) != 1:
                raise HSMError("the PKCS#11 engine refused the PIN (value not shown)")
            pkey = c.ENGINE_load_private_key(e, uri.encode(), None, None)
            if not pkey:
                raise HSMError(
                    "key %s not found in the token (or wrong PIN): %s" % (uri, lib.errors())
                )
        finally:
            c.ERR_clear_error()
        self._pkey = pkey
        kind = lib.pkey_id(pkey)
        if kind == _EVP_PKEY_EC:
            self.algorithm = "ES256"
        elif kind == _EVP_PKEY_RSA:
            self.algorithm = "RS256"
        else:
            raise HSMError("key %s: only EC and RSA token keys can sign (type %d)" % (uri, kind))

    def sign(self, message):
        lib = _lib()
        c = lib.crypto
        message = bytes(message)
        md = c.EVP_MD_CTX_new()
        n = ctypes.c_size_t(0)
        try:
            # the key carries its engine, so the token signs (OpenSSL only hashes)
            ok = c.EVP_DigestSignInit(md, None, c.EVP_sha256(), None, self._pkey) == 1
            ok = ok and c.EVP_DigestSign(md, None, ctypes.byref(n), message, len(message)) == 1
            buf = ctypes.create_string_buffer(n.value)
            ok = ok and c.EVP_DigestSign(md, buf, ctypes.byref(n), message, len(message)) == 1
            if not ok:
                raise HSMError("the token did not sign with %s: %s" % (self.uri, lib.errors()))
            return buf.raw[: n.value]
        finally:
            c.EVP_MD_CTX_free(md)
            c.ERR_clear_error()

    def public_key_der(self):
        c = _lib().crypto
        n = c.i2d_PUBKEY(self._pkey, None)
        if n <= 0:
            c.ERR_clear_error()
            raise HSMError("the token gave no public key for %s" % self.uri)
        buf = ctypes.create_string_buffer(n)
        p = ctypes.c_void_p(ctypes.addressof(buf))  # i2d writes there and moves p on
        c.i2d_PUBKEY(self._pkey, ctypes.byref(p))
        return buf.raw[:n]

    def __del__(self):
        if self._pkey and _openssl is not None:
            _openssl.crypto.EVP_PKEY_free(self._pkey)
            self._pkey = None
