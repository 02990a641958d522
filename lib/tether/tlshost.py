"""CPython only: tether.tlsctx's contexts on CPython's `ssl` module.

tlsctx.client_context() checks its arguments on either interpreter, then builds the context
here on CPython (on MicroPython it builds a `tls` one itself). Apart so a board never
carries this code: the module is in no component (tools/components.HOST_ONLY), like
tether.hsm, and tlsctx imports it lazily, on CPython only.

    ctx = context(cas, cert, key, insecure, warn)   # what tlsctx.client_context returns
    load_cert_chain_bytes(ctx, cert_pem, key_pem)   # also tlsctx.load_cert_chain_bytes
"""

import os
import ssl

from tether.errors import CredentialError

_insecure_cls = None


def context(cas, cert, key, insecure, warn):
    """An ssl.SSLContext trusting `cas` (DER list; empty: the system store unless insecure),
    with a client certificate and key (checked DER) or None. An insecure context calls
    warn(server_hostname) at every connection."""
    cls = _insecure_class(warn) if insecure else ssl.SSLContext
    ctx = cls(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname by default
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    for c in cas:
        try:
            ctx.load_verify_locations(cadata=c)
        except ssl.SSLError as exc:
            raise CredentialError("CA certificate rejected by OpenSSL: %s" % exc)
    if not cas and not insecure:
        ctx.load_default_certs()
    if cert is not None:
        from tether.certs import _key_pem_label
        from tether.der import pem_encode as pem

        load_cert_chain_bytes(ctx, pem("CERTIFICATE", cert), pem(_key_pem_label(key), key))
    return ctx


def load_cert_chain_bytes(ctx, cert_pem, key_pem):
    """CPython's ssl loads keys only from files. On Linux the file is an anonymous memfd
    (never on a disk, gone with the process even if it is killed); elsewhere a private
    temp file (mode 0600) that is deleted at once."""
    memfd = getattr(os, "memfd_create", None)
    if memfd is not None and os.path.isdir("/proc/self/fd"):
        fd = memfd("tether-key", getattr(os, "MFD_CLOEXEC", 0))
        path = None
    else:
        import tempfile

        fd, path = tempfile.mkstemp(prefix="tether-", suffix=".pem")
    try:
        os.write(fd, (key_pem + cert_pem).encode())
        ctx.load_cert_chain(path or "/proc/self/fd/%d" % fd)
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc):
            raise CredentialError("key does not match the certificate (wrong key file?)")
        raise CredentialError("certificate/key rejected by OpenSSL: %s" % exc.reason)
    finally:
        os.close(fd)
        if path is not None:
            os.unlink(path)


def _insecure_class(warn):
    """One ssl.SSLContext subclass per process (made on first use) that warns through
    warn() on each wrapped connection."""
    global _insecure_cls
    if _insecure_cls is None:

        class InsecureContext(ssl.SSLContext):
            """CPython: a non-verifying context that warns on each wrapped connection."""

            tether_insecure = True

            def wrap_bio(self, *args, **kwargs):  # what asyncio calls
                warn(kwargs.get("server_hostname"))
                return super().wrap_bio(*args, **kwargs)

            def wrap_socket(self, *args, **kwargs):
                warn(kwargs.get("server_hostname"))
                return super().wrap_socket(*args, **kwargs)

        _insecure_cls = InsecureContext
    return _insecure_cls
