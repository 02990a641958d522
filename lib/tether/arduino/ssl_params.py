"""arduino-iot-cloud-py's `ssl_params`, translated into one verifying TLS context.

    ctx = context_from_ssl_params(client.ssl_params, client.port, ca_override=CLOUD_CA)

Names taken, as the original client has them: `keyfile`, `certfile` (a path to DER or PEM,
DER bytes, `se05x:token=...` or, on CPython, `pkcs11:...`), `cafile` (path) or `cadata`
(bytes, or a list), `verify_mode` (ssl.CERT_NONE = 0 turns verification off, like
`"insecure": True`), `ciphers` (CPython), `module_path`, `engine_path`, `pin` (PKCS#11), and
Tether's `ecdsa_sign_callback` (the firmware's SE05x hook for a reference key in `keyfile`).
Without a CA the Arduino roots for the port are trusted (tether.arduino.roots).
"""

import sys

from tether import log
from tether.compat import MICROPYTHON

_log = log.getLogger("arduino")

_CERT_NONE = 0  # ssl.CERT_NONE / tls.CERT_NONE on both interpreters
# Needed only while the context is built; dropped afterwards unless loaded before.
_BUILD_ONLY = ("tether.creds", "tether.certs", "tether.der")


def cert_auth(ssl_params):
    """True when ssl_params ask for certificate authentication (a key or certificate)."""
    return "keyfile" in ssl_params or "certfile" in ssl_params


def default_roots(port, certificate_auth):
    """The Arduino roots (a list of DER) for a connection to `port`.

    The roots module holds ~4.6 KB of DER; mbedTLS copies what it needs, so the module is
    dropped again after use (a .mpy module's constants live in RAM)."""
    from tether.arduino import roots

    cas = roots.for_port(port, certificate_auth)
    sys.modules.pop("tether.arduino.roots", None)
    try:  # the package holds it as an attribute too (no import: no arrow back up)
        delattr(sys.modules["tether.arduino"], "roots")
    except (AttributeError, KeyError):
        pass
    return cas


def _forget(names):
    """Drop modules from sys.modules and their package, so the GC can take their code."""
    for name in names:
        sys.modules.pop(name, None)
        pkg, _, attr = name.rpartition(".")
        try:
            delattr(sys.modules[pkg], attr)
        except (AttributeError, KeyError):
            pass


def client_context(client):
    """The TLS context of an ArduinoCloudClient (its ssl_params, port and CLOUD_CA)."""
    p = client.ssl_params
    # The common case (password auth, DER CA or the built-in roots, verifying) skips
    # tether.creds and tether.der (keys, certificates, PEM), and on MicroPython tlsctx
    # too: modules loaded for one context cost RAM a board needs for TLS.
    if not (cert_auth(p) or p.get("insecure") or "verify_mode" in p or "ciphers" in p):
        ca = p.get("cadata")
        if ca is None:
            path = p.get("cafile") or client._ca_override
            if path is None:
                ca = default_roots(client.port, False)
            elif isinstance(path, str):
                with open(path, "rb") as f:
                    ca = f.read()
            else:
                ca = path
        cas = ca if isinstance(ca, list) else [ca]
        if all(isinstance(c, bytes) and c[:1] == b"\x30" for c in cas):
            if MICROPYTHON:
                from tether.cloud.tls import verifying_context

                return verifying_context(cas)
            from tether import tlsctx

            return tlsctx.client_context(cadata=cas)
    return context_from_ssl_params(p, client.port, client._ca_override)


def context_from_ssl_params(ssl_params, port=None, ca_override=None, se=None):
    """A TLS context for `ssl_params` (a dict in arduino-iot-cloud-py's names).

    port: the broker port, which picks the built-in Arduino roots when neither `cadata`,
    `cafile` nor `ca_override` gives a CA (None: no built-in roots, i.e. CPython's system
    store). ca_override: a CA source (path, DER or PEM) that wins over the built-in roots
    (secrets.CLOUD_CA). se: a tether.hal.se05x SecureElement instead of the board's.
    Raises tether.errors.CredentialError saying what to fix.
    """
    from tether.compat import MICROPYTHON

    if not MICROPYTHON:
        return _context(ssl_params, port, ca_override, se)
    loaded = [n for n in _BUILD_ONLY if n in sys.modules]
    try:
        return _context(ssl_params, port, ca_override, se)
    finally:
        # The context keeps what it needs; the loaders (~20 KB of code when loaded from
        # .mpy on the unix port) would otherwise stay for the life of the client.
        _forget([n for n in _BUILD_ONLY if n not in loaded])


def _context(p, port, ca_override, se):
    try:
        from tether import creds
    except ImportError:  # an image without tether-certauth: DER CAs only
        from tether import nocert as creds

    # verify_mode=CERT_NONE is how scripts for the original client turned checks off;
    # here it is the same explicit opt-out as {"insecure": True}.
    insecure = bool(p.get("insecure")) or p.get("verify_mode", 2) == _CERT_NONE
    if insecure:
        _log.warning("TLS verification is OFF (ssl_params): the server is not checked")
    ca = p.get("cadata")
    if ca is None:
        ca = p.get("cafile") or ca_override
    if ca is None and port is not None:
        ca = default_roots(port, cert_auth(p))
    ctx = creds.tls_context(
        ca=ca,
        cert=p.get("certfile"),
        key=p.get("keyfile"),
        insecure=insecure,
        se=se,
        module_path=p.get("module_path"),
        engine_path=p.get("engine_path"),
        pin=p.get("pin"),
        sign_hook=p.get("ecdsa_sign_callback"),
    )
    if p.get("ciphers"):
        if hasattr(ctx, "set_ciphers"):
            ctx.set_ciphers(p["ciphers"])
        else:  # mbedTLS here picks its own suites
            _log.warning("ssl_params ciphers ignored: this port's TLS cannot restrict them")
    return ctx
