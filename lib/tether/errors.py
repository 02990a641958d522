"""Exceptions shared by the credential modules (a leaf: it imports nothing).

tlsctx, hsm, creds and signer all raise CredentialError; keeping it here lets each of them
import it without importing another (tlsctx re-exports it for older imports).
"""


class CredentialError(ValueError):
    """A certificate or key that cannot work; the message says what to fix."""
