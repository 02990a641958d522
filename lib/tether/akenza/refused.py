"""The broker refused the login (CONNACK 4 or 5): say what was sent and what to check.

MQTT 3.1.1 gives no reason with the refusal; akenza checks (protocols.md §3.7) the client id
against its device ids, the JWT's alg, kid and signature against the registered key, aud,
exp and iat. The message names each claim the device sent, so the one at fault can be
found next to the broker's log. Loaded only when a connect is refused.
"""

from tether.mqtt import MQTTConnectError


class TokenRefused(MQTTConnectError):
    """A refused login; `.code` is the CONNACK code (an MQTTConnectError, so the session
    files it under the "mqtt" stage)."""

    def __init__(self, code, message):
        super(MQTTConnectError, self).__init__(message)  # not its "refused (n)" text
        self.code = code


def refused(client, code):
    what = "not authorized" if code == 5 else "bad user name or password"
    c = client.credentials
    if c is None:
        msg = (
            "akenza refused connector %r (CONNACK %d, %s): check the device connector id "
            "and its secret, and that device %s exists" % (client.username, code, what,
            client.device_id)
        )  # fmt: skip
    else:
        msg = (
            "akenza refused the JWT of device %r (CONNACK %d, %s); it sent %s. Check: the "
            "client id is the akenza device id; the public key registered for it has kid "
            "%s; aud is the broker's (a private cloud has its own); iat/exp match the "
            "real time (clock)" % (client.device_id, code, what, c.describe(), c.kid)
        )
    return TokenRefused(code, msg)
