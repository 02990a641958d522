"""Loading an akenza device's key and CA: needed while the client is made, then dropped.

    signer = load_signer("ec_private.der")      # or PEM, DER/PEM bytes, se05x:, pkcs11:
    ca = read_ca("akenza_ca.der")                # bytes

AkenzaClient calls these through tether.compat.build_once: on a board this module, and
tether.keys / tether.der / tether.p256 that loading a software key takes, are dropped again
once the key is loaded; the signer kept (tether.akenza.credentials.Slim) holds the scalar
(or the rsa.RSAPrivate) and the public key's DER.
"""

from tether.compat import MICROPYTHON
from tether.errors import CredentialError


def load_signer(key, base_dir=None, se=None, cert=None):
    """A Signer from a DER/PEM path or bytes, `se05x:...` / `pkcs11:...`, or a Signer.
    Raises CredentialError naming the file and what is wrong with it."""
    if hasattr(key, "sign") and hasattr(key, "algorithm"):
        return key
    if isinstance(key, str) and key.startswith(("se05x:", "pkcs11:")):
        from tether import creds

        return creds.load_signer(key, base_dir, se=se, cert=cert)
    name = None
    if isinstance(key, str) and "-----BEGIN" not in key:
        name = key if not base_dir or key.startswith("/") else base_dir.rstrip("/") + "/" + key
        try:
            with open(name, "rb") as f:
                key = f.read()
        except OSError as exc:
            raise CredentialError("key file %s cannot be read (%s)" % (name, exc))
    from tether.compat import build_once

    try:
        # A board keeps only what signing needs: tether.keys, tether.der and p256 (20 KB of
        # bytecode from .mpy) load the key and make its public key, then go (build_once).
        return build_once(_load, key)
    except CredentialError as exc:
        if name is None:
            raise
        raise CredentialError("key file %s: %s" % (name, exc))


def _load(key):
    from tether.keys import load_private_key

    signer = load_private_key(key)
    if not MICROPYTHON:
        return signer
    from tether.akenza.credentials import Slim

    return Slim(signer)


def read_ca(ca):
    """DER/PEM bytes of a CA given as a path or as bytes."""
    if isinstance(ca, str) and "-----BEGIN" not in ca:
        try:
            with open(ca, "rb") as f:
                return f.read()
        except OSError as exc:
            raise CredentialError("CA file %s cannot be read (%s)" % (ca, exc))
    return ca


def need_ca(host):
    return CredentialError(
        "ca= is needed: the root CA of %s is not confirmed, so none is embedded "
        "(docs/akenza.md); MicroPython has no system store. Save the broker's "
        "root as DER and pass its path or bytes" % host
    )
