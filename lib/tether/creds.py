"""Credentials from wherever they live: files, bytes, PEM text, an SE05x or a PKCS#11 token.

One dispatcher for keys, certificates and CAs. A source `src` is:
- a file path (relative to `base_dir`), holding DER or PEM;
- DER bytes, or PEM bytes / text (the armour is decoded here, on every interpreter: an
  unencrypted PEM key needs no openssl; an encrypted one is refused with the host command
  that decrypts it);
- `se05x:token=0x00000064`: an object in the board's SE05x (key or certificate);
- `pkcs11:...`: an object in a PKCS#11 token (CPython with the hsm extra only).

    ctx = creds.tls_context(ca="ca.pem", cert="cert.pem", key="se05x:token=0x64")
    signer = creds.load_signer("key.pem")           # -> tether.signer.Signer
    kw = creds.load_credentials(settings)           # the firmware's settings, as before
    ctx = creds.make_context(kw)

What a connection presents (username, password) is a Credentials provider:
`Credentials`, `StaticCredentials` (tether.credentials, re-exported here).
"""

from tether import certs, tlsctx
from tether.certs import conversion_command  # noqa: F401 (re-exported for old callers)
from tether.credentials import Credentials, StaticCredentials  # noqa: F401 (re-exported)
from tether.errors import CredentialError

SE05X_BOARDS = "Arduino Portenta H7 and Nicla Vision (MicroPython built with ECDSA_SIGN_ALT)"

_PKCS11 = "pkcs11:"
_SE05X = "se05x:"


def _join(base, path):
    if not base or path.startswith("/"):
        return path
    return base.rstrip("/") + "/" + path


def _is_ref(src, scheme):
    return isinstance(src, str) and src.startswith(scheme)


def _need_cpython(src, what):
    from tether.compat import MICROPYTHON

    if MICROPYTHON:
        raise CredentialError(
            "%s %s is in a PKCS#11 token: that needs CPython with the hsm extra "
            "(on a board use a DER/PEM file or an SE05x object)" % (what, src.split(";")[0])
        )


def _se_oid(value, what):
    from tether.hal import se05x

    try:
        return se05x.parse_token(value)
    except ValueError as exc:
        raise CredentialError("%s: %s" % (what, exc))


def _read_file(path, what):
    """The bytes of a file; CredentialError naming the file (never its content)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise CredentialError("%s file %s cannot be read (%s)" % (what, path, exc))
    if not data:
        raise CredentialError("%s file %s is empty" % (what, path))
    return data


def _ders(src, kind, base_dir):
    """The DER items (a list) of a path / DER / PEM source for kind "key", "cert" or "ca"."""
    what = certs._WHAT[kind]
    name = None
    if isinstance(src, str) and not certs.is_pem(src):
        name = _join(base_dir, src)
        data = _read_file(name, what)
    elif isinstance(src, (str, bytes, bytearray, memoryview)):
        data = src
    else:
        raise CredentialError(
            "%s: expected a path, DER or PEM, got %s" % (what, type(src).__name__)
        )
    if certs.is_pem(data):
        return certs.pem_to_der(data, kind, name)
    data = bytes(data)
    if not data or data[0] != 0x30:
        label = "%s file %s" % (what, name) if name else what
        raise CredentialError("%s is not DER nor PEM (corrupt or wrong file?)" % label)
    return [data]


def load_key(src, base_dir=None):
    """A private key as DER bytes, from a path, DER or PEM (SEC1, PKCS#8 or PKCS#1 RSA).

    An `se05x:` or `pkcs11:` reference is checked and returned as it is (a str): the key
    stays in its chip; tls_context() and load_signer() know what to do with it.
    """
    if _is_ref(src, _SE05X):
        _se_oid(src, "key")
        return src
    if _is_ref(src, _PKCS11):
        _need_cpython(src, "key")
        return src
    der = _ders(src, "key", base_dir)[0]
    try:
        certs._key_public(der)
    except ValueError:
        raise CredentialError("key %s is corrupt: not a valid private key" % _name(src))
    return der


def _name(src):
    return src if isinstance(src, str) and not certs.is_pem(src) else "(given as bytes)"


def load_cert(src, base_dir=None, se=None):
    """A certificate as DER bytes, from a path, DER, PEM (the first certificate: the leaf)
    or an SE05x object (`se` replaces the board's secure element). A `pkcs11:` reference is
    returned as it is (tether.hsm reads it from the token)."""
    if _is_ref(src, _PKCS11):
        _need_cpython(src, "cert")
        return src
    if _is_ref(src, _SE05X):
        oid = _se_oid(src, "cert")
        if se is None:
            from tether.hal import se05x

            se = se05x.get_secure_element()
        try:
            return se.read_certificate(oid)
        except (OSError, RuntimeError) as exc:
            raise CredentialError("cert %s cannot be read from the SE05x: %s" % (src, exc))
    der = _ders(src, "cert", base_dir)[0]
    try:
        certs._cert_public(der)
    except ValueError:
        raise CredentialError("certificate %s is not a valid certificate" % _name(src))
    return der


def load_ca(src, base_dir=None):
    """Trusted roots as a list of DER certificates. src: one source or a list of them; a
    PEM bundle gives every certificate in it."""
    srcs = src if isinstance(src, (list, tuple)) else [src]
    out = []
    for s in srcs:
        for der in _ders(s, "ca", base_dir):
            try:
                certs.check_ca(der)
            except CredentialError:
                raise CredentialError(
                    "CA certificate %s is not a valid certificate (corrupt file?)" % _name(s)
                )
            out.append(der)
    return out


def port_has_sign_hook():
    """True when this port's TLS can sign through a callback (needed for SE05x keys)."""
    try:
        import tls
    except ImportError:
        return False  # CPython's ssl has no such hook
    return hasattr(tls.SSLContext(tls.PROTOCOL_TLS_CLIENT), "ecdsa_sign_callback")


def _se_key(key, se):
    """(reference key DER, ecdsa_sign_callback) for an `se05x:` key."""
    from tether.hal import se05x

    oid = _se_oid(key, "key")
    if not port_has_sign_hook():
        raise CredentialError(
            "key %s is in an SE05x, but this port's TLS cannot sign with it (no "
            "ecdsa_sign_callback). SE05x keys work on %s; on ESP32, Nano RP2040 Connect "
            "and the unix port use key and certificate files (docs/boards.md)"
            % (key, SE05X_BOARDS)
        )
    se = se or se05x.get_secure_element()
    return se05x.reference_key(oid), se.sign_callback()


def tls_context(
    ca=None,
    cert=None,
    key=None,
    insecure=False,
    se=None,
    base_dir=None,
    module_path=None,
    engine_path=None,
    pin=None,
    sign_hook=None,
):
    """A verifying TLS context (tlsctx.client_context) from sources of any kind.

    ca: one source or a list (None: the system store on CPython; required on MicroPython).
    cert, key: both or neither. An `se05x:` key installs the SE05x signing hook (boards
    whose TLS has ecdsa_sign_callback); a `pkcs11:` key goes through tether.hsm (CPython;
    module_path, engine_path, pin as there). sign_hook: an ecdsa_sign_callback to install
    when `key` is already an SE reference key (what load_credentials returns).
    """
    if (cert is None) != (key is None):
        raise CredentialError("cert and key go together: pass both or neither")
    cas = load_ca(ca, base_dir) if ca is not None else None
    if key is not None:
        key = load_key(key, base_dir)
        if _is_ref(key, _SE05X):  # before the cert: no hook makes reading it pointless
            key, sign_hook = _se_key(key, se)
        cert = load_cert(cert, base_dir, se)
        if _is_ref(key, _PKCS11):
            from tether import hsm

            return hsm.client_context(
                cadata=cas, cert=cert, key=key, insecure=insecure,
                module_path=module_path, engine_path=engine_path, pin=pin,
            )  # fmt: skip
        elif _is_ref(cert, _PKCS11):
            raise CredentialError("a pkcs11: certificate needs its key in the token too")
    return _context(cas, cert, key, insecure, sign_hook)


def _context(cas, cert, key, insecure, hook):
    ctx = tlsctx.client_context(cadata=cas, cert=cert, key=key, insecure=insecure)
    if hook is not None:
        native = getattr(ctx, "_ctx", ctx)  # the MicroPython wrapper holds the native one
        native.ecdsa_sign_callback = hook
    return ctx


def load_signer(src, base_dir=None, se=None, cert=None, module_path=None, pin=None):
    """A tether.signer.Signer for the key at src: `se05x:` (SE05xSigner; `cert` gives its
    public key), `pkcs11:` (Pkcs11Signer, CPython), else a software key from a path, DER or
    PEM (tether.keys.load_private_key)."""
    from tether import signer

    if _is_ref(src, _SE05X):
        return signer.SE05xSigner(src, se=se, cert=cert)
    if _is_ref(src, _PKCS11):
        _need_cpython(src, "key")
        return signer.Pkcs11Signer(src, module_path=module_path, pin=pin)
    der = load_key(src, base_dir)
    try:
        from tether import keys
    except ImportError:
        raise CredentialError("software signing needs tether.keys (not in this image)")
    return keys.load_private_key(der)


def load_credentials(settings, se=None):
    """Keyword arguments for tlsctx.client_context from settings["credentials"].

    {"key", "cert", "ca"}: each a path (relative to settings["_dir"]) to DER or PEM, or for
    key and cert an SE05x reference; "ca" may be a list. The flat form {"key": ..., "cert":
    ...} works too. Returns "cadata" (bytes, or a list for several roots), "cert", "key" and,
    for an SE05x key, "ecdsa_sign_callback" (make_context installs it). `se` replaces the
    board's secure element (the unix port's fake).
    """
    spec = settings.get("credentials")
    if spec is None and ("key" in settings or "cert" in settings):
        spec = settings  # the flat form {"key": ..., "cert": ...} a cloud client may pass
    spec = spec or {}
    base = settings.get("_dir", "")
    out = {}
    ca = spec.get("ca")
    if ca:
        cas = load_ca(ca, base)
        out["cadata"] = cas if len(cas) > 1 else cas[0]
    key, cert = spec.get("key"), spec.get("cert")
    if (key is None) != (cert is None):
        raise CredentialError("credentials: give both key and cert, or neither")
    if key is None:
        return out
    key = load_key(key, base)
    if _is_ref(key, _SE05X):
        key, out["ecdsa_sign_callback"] = _se_key(key, se)
    out["key"] = key
    out["cert"] = load_cert(cert, base, se)
    return out


def make_context(creds, insecure=False):
    """tlsctx.client_context(**creds) with the SE05x signing hook installed when present."""
    return _context(
        creds.get("cadata"),
        creds.get("cert"),
        creds.get("key"),
        insecure,
        creds.get("ecdsa_sign_callback"),
    )
