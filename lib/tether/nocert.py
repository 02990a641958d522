"""What tether.creds does in an image without certificate authentication.

Certificate authentication (tether.creds, certs, der, signer, hal.se05x: 14 KB of .mpy) is
the tether-certauth component, which an image built for password or SAS auth leaves out.
A caller that works either way imports this module in its place:

    try:
        from tether import creds
    except ImportError:  # an image without tether-certauth
        from tether import nocert as creds

It does what a password device needs, trusting CA certificates given as DER (bytes or
files), with the same names and arguments as tether.creds. Everything else (a key, a
certificate, a PEM file, an SE05x object) raises CredentialError naming the component to
add, before any connection is tried.
"""

from tether.errors import CredentialError

MISSING = "certificate authentication is not in this image: add the tether-certauth component"


def missing(what):
    """CredentialError for `what` ("key", "tether.certs", ...), naming the component."""
    return CredentialError("%s: %s (docs/boards.md)" % (what, MISSING))


def load_ca(src, base_dir=None):
    """Trusted roots as a list of DER certificates: src is DER bytes, a path to a DER file
    (relative to base_dir), or a list of them. PEM is missing() (tether.certs decodes it)."""
    out = []
    for s in src if isinstance(src, (list, tuple)) else [src]:
        what = "CA certificate"
        if isinstance(s, str) and s[:5] != "-----":
            if base_dir and s[:1] != "/":
                s = base_dir.rstrip("/") + "/" + s
            what += " file " + s
            try:
                with open(s, "rb") as f:
                    s = f.read()
            except OSError as exc:
                raise CredentialError("%s cannot be read (%s)" % (what, exc))
        s = s.encode() if isinstance(s, str) else bytes(s)
        if s[:5] == b"-----":
            raise missing("PEM %s (or convert it: openssl x509 -outform DER)" % what)
        if s[:1] != b"\x30":
            raise CredentialError("%s is not DER (corrupt or wrong file?)" % what)
        out.append(s)
    return out


def load_credentials(settings, se=None):
    """tether.creds.load_credentials for settings without a key and certificate: {} or
    {"cadata": DER or a list of them}."""
    spec = settings.get("credentials") or {}
    if spec.get("key") or spec.get("cert") or settings.get("key") or settings.get("cert"):
        raise missing("credentials key/cert")
    if not spec.get("ca"):
        return {}
    cas = load_ca(spec["ca"], settings.get("_dir"))
    return {"cadata": cas if len(cas) > 1 else cas[0]}


def tls_context(ca=None, cert=None, key=None, insecure=False, base_dir=None, **_):
    """tether.creds.tls_context without a client certificate: DER CAs only. The other
    keywords of creds.tls_context (se, module_path, ...) are accepted and unused."""
    if cert is not None or key is not None:
        raise missing("client certificate and key (mutual TLS)")
    from tether import tlsctx

    return tlsctx.client_context(
        load_ca(ca, base_dir) if ca is not None else None, insecure=insecure
    )
