"""Firmware credentials: from the settings' "credentials" entry to `tlsctx` arguments.

    kw = load_credentials(settings)       # {"cadata": ..., "cert": ..., "key": ...}
    ctx = make_context(kw)                # tlsctx.client_context + the SE05x signing hook

Each of "key", "cert", "ca" is a DER file path (relative to the settings file's folder)
or, for key and cert, an SE05x reference `se05x:token=0x00000064`.

DER only, on every interpreter: the same settings must work on a board, whose mbedTLS
takes DER, so a PEM file is refused here with the command that converts it rather than
accepted on a PC and failing later on the board.
"""

from tether.hal import se05x
from tether.tlsctx import CredentialError

SE05X_BOARDS = "Arduino Portenta H7 and Nicla Vision (MicroPython built with ECDSA_SIGN_ALT)"


def _join(base, path):
    if not base or path.startswith("/"):
        return path
    return base.rstrip("/") + "/" + path


def _pem_label(data):
    start = data.find(b"-----BEGIN ")
    if start < 0 or start > 64:
        return None
    end = data.find(b"-----", start + 11)
    return data[start + 11 : end].decode() if end > 0 else "?"


def conversion_command(path, label, kind):
    """The exact command that turns the PEM file at `path` into the DER the board needs."""
    out = path[:-4] + ".der" if path.endswith(".pem") else path + ".der"
    if kind == "cert":
        tool = "openssl x509"
    elif label == "EC PRIVATE KEY":
        tool = "openssl ec"
    else:  # PKCS#8 "PRIVATE KEY" or RSA: pkey writes any key type as DER
        tool = "openssl pkey"
    return "%s -in %s -outform DER -out %s" % (tool, path, out)


def read_der(path, kind):
    """The bytes of a DER file; CredentialError naming the file (never its content)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise CredentialError("%s file %s cannot be read (%s)" % (kind, path, exc))
    if not data:
        raise CredentialError("%s file %s is empty" % (kind, path))
    label = _pem_label(data)
    if label is not None:
        raise CredentialError(
            "%s file %s is PEM (%s) but the board needs DER; convert it with: %s "
            "(or on the host: python -m tools.pem2der %s)"
            % (kind, path, label, conversion_command(path, label, kind), path)
        )
    if data[0] != 0x30:
        raise CredentialError("%s file %s is not DER (corrupt or wrong file?)" % (kind, path))
    return data


def port_has_sign_hook():
    """True when this port's TLS can sign through a callback (needed for SE05x keys)."""
    try:
        import tls
    except ImportError:
        return False  # CPython's ssl has no such hook
    return hasattr(tls.SSLContext(tls.PROTOCOL_TLS_CLIENT), "ecdsa_sign_callback")


def _se_oid(value, kind):
    try:
        return se05x.parse_token(value)
    except ValueError as exc:
        raise CredentialError("%s: %s" % (kind, exc))


def load_credentials(settings, se=None):
    """Keyword arguments for tlsctx.client_context from settings["credentials"].

    Adds "ecdsa_sign_callback" when the key lives in an SE05x (make_context installs it).
    `se` replaces the board's secure element (the unix port's fake).
    """
    spec = settings.get("credentials")
    if spec is None and ("key" in settings or "cert" in settings):
        spec = settings  # the flat form {"key": ..., "cert": ...} a cloud client may pass
    spec = spec or {}
    base = settings.get("_dir", "")
    out = {}
    ca = spec.get("ca")
    if ca:
        paths = ca if isinstance(ca, (list, tuple)) else [ca]
        cas = [read_der(_join(base, p), "CA certificate") for p in paths]
        out["cadata"] = cas if len(cas) > 1 else cas[0]
    key, cert = spec.get("key"), spec.get("cert")
    if (key is None) != (cert is None):
        raise CredentialError("credentials: give both key and cert, or neither")
    if key is None:
        return out
    key_oid = _se_oid(key, "key")
    cert_oid = _se_oid(cert, "cert")
    if key_oid is not None or cert_oid is not None:
        se = se or se05x.get_secure_element()
    if key_oid is not None:
        if not port_has_sign_hook():
            raise CredentialError(
                "key %s is in an SE05x, but this port's TLS cannot sign with it (no "
                "ecdsa_sign_callback). SE05x keys work on %s; on ESP32, Nano RP2040 Connect "
                "and the unix port use DER key and certificate files (docs/boards.md)"
                % (key, SE05X_BOARDS)
            )
        out["key"] = se05x.reference_key(key_oid)
        out["ecdsa_sign_callback"] = se.sign_callback()
    else:
        out["key"] = read_der(_join(base, key), "key")
    if cert_oid is not None:
        try:
            out["cert"] = se.read_certificate(cert_oid)
        except (OSError, RuntimeError) as exc:
            raise CredentialError("cert %s cannot be read from the SE05x: %s" % (cert, exc))
    else:
        out["cert"] = read_der(_join(base, cert), "cert")
    return out


def make_context(creds, insecure=False):
    """tlsctx.client_context(**creds) with the SE05x signing hook installed when present."""
    from tether import tlsctx

    args = {}
    for name in ("cadata", "cert", "key"):
        if name in creds:
            args[name] = creds[name]
    ctx = tlsctx.client_context(insecure=insecure, **args)
    hook = creds.get("ecdsa_sign_callback")
    if hook is not None:
        native = getattr(ctx, "_ctx", ctx)  # the insecure wrapper holds the native context
        native.ecdsa_sign_callback = hook
    return ctx
