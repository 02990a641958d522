"""Who may connect, and which topics each device may use (protocols.md §1.2, §1.3, §1.7)."""

import hmac

from . import pki


def check_password(store, client_id, username, password):
    """Password port: username == client id == a registered device id, password == secret."""
    if not client_id or username != client_id or password is None:
        return None
    dev = store.devices.get(client_id)
    if dev is None or dev.secret is None:
        return None
    given = password.encode() if isinstance(password, str) else bytes(password)
    if not hmac.compare_digest(given, dev.secret.encode()):
        return None
    return dev


def check_certificate(store, client_id, cert_der):
    """Certificate port: the verified client certificate must be the one registered for the
    device the client id names. (The TLS layer already checked it chains to the test CA.)"""
    if not client_id or not cert_der:
        return None
    dev = store.devices.get(client_id)
    if dev is None or dev.cert_fingerprint is None:
        return None
    if not hmac.compare_digest(pki.fingerprint(cert_der), dev.cert_fingerprint):
        return None
    return dev


def topic_allowed(dev, topic):
    """A device may use its own /a/d/{id}/... topics and its thing's /a/t/{thing}/... topics.

    Wildcards are refused: a device has no business subscribing to anything but exact topics.
    """
    if dev is None or "#" in topic or "+" in topic:
        return False
    if topic.startswith("/a/d/%s/" % dev.id):
        return topic[len("/a/d/%s/" % dev.id) :] in ("e/i", "e/o", "c/up", "c/dw")
    if dev.thing_id and topic.startswith("/a/t/%s/" % dev.thing_id):
        return topic[len("/a/t/%s/" % dev.thing_id) :] in ("e/i", "e/o", "shadow/i", "shadow/o")
    return False
