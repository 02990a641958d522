"""The hub's request/reply and inbound side, a mixin of tether.azure.hub.HubClient.

Twin GET / reported PATCH correlated by `$rid` (tether.cloud.requests; done on res/204, any
status >= 300 raises ClientError at once, as the SDK does), desired properties reconciled
by `$version`, direct methods (the handler may await send_method_response) and C2D
messages with their property bags. Everything malformed raises inside a router handler:
the base counts it in `bad_messages`, logs it and keeps the connection.
"""

import json

from tether import log
from tether.azure import bag
from tether.azure.exceptions import (
    ClientError,
    ConnectionDroppedError,
    OperationTimeout,
)
from tether.azure.models import Message, MethodRequest
from tether.compat import const

_log = log.getLogger("azure")
_ETIMEDOUT = const(110)
TWIN = "twin"
DESIRED = "desired"
METHODS = "methods"
C2D = "c2d"


def loads(payload):
    """JSON of a payload (bytes; blank is None); ValueError when it is not JSON."""
    b = bytes(payload)
    if not b.strip():
        return None
    return json.loads(b)


class Features:
    TWIN_TIMEOUT_MS = 30000

    async def _twin(self, topic, body):
        if not self.connected:
            await self.connect()
        await self._ensure(TWIN)
        r = self.requests
        rid = r.new_id()
        try:
            status, payload = await r.call(
                rid, lambda: self.publish(topic + rid, body, 1), self.TWIN_TIMEOUT_MS
            )
        except OSError as exc:
            if exc.args and exc.args[0] == _ETIMEDOUT:
                raise OperationTimeout("no twin reply in %d ms" % self.TWIN_TIMEOUT_MS)
            raise ConnectionDroppedError("twin request: %s" % exc)
        except Exception as exc:  # the connection died under the publish
            raise ConnectionDroppedError("twin request: %s" % exc)
        if status >= 300:
            self.counters["twin_errors"] += 1
            raise ClientError("twin request failed with status %d" % status)
        return payload

    async def get_twin(self):
        """The twin document {"desired": {...}, "reported": {...}}."""
        try:
            doc = loads(await self._twin("$iothub/twin/GET/?$rid=", b" "))
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            self.counters["twin_errors"] += 1
            raise ClientError("twin document is not a JSON object")
        return doc

    async def patch_twin_reported_properties(self, reported_properties_patch):
        """Merge a patch into the reported properties (None deletes a key); returns when the
        hub answered 204."""
        body = json.dumps(reported_properties_patch)
        await self._twin("$iothub/twin/PATCH/properties/reported/?$rid=", body)

    def _on_twin_reply(self, topic, payload):
        try:
            status, rid, _ = bag.status_rid(topic, "$iothub/twin/res/")
        except ValueError as exc:
            self.bad_message(topic, exc)
            return
        if rid is None or not self.requests.resolve(rid, (status, bytes(payload))):
            self.bad_message(topic, ValueError("twin reply for no request ($rid %s)" % rid))

    async def _reconcile(self):
        # Desired changes made while offline were never notified: compare the versions.
        try:
            doc = await self.get_twin()
        except Exception as exc:  # 429 / 5xx / timeout: the next reconnect tries again
            _log.warning("twin GET after connect failed: %s", exc)
            return
        desired = doc.get("desired")
        if isinstance(desired, dict):
            await self._give_desired(desired)

    async def _give_desired(self, patch):
        try:
            v = int(patch["$version"])
        except (KeyError, TypeError, ValueError):
            raise ValueError("desired properties without a valid $version")
        if self._dv is not None and v <= self._dv:
            self.counters["stale_desired"] += 1
            return
        self._dv = v
        self.counters["desired"] += 1
        await self._call("desired", "on_twin_desired_properties_patch_received", patch)

    async def _on_desired(self, topic, payload):
        patch = loads(payload)
        if not isinstance(patch, dict):
            raise ValueError("desired patch is not a JSON object")
        await self._give_desired(patch)

    async def _call(self, key, name, arg):
        fn = self._handlers.get(key)
        if fn is None:
            return
        try:
            r = fn(arg)
            if r is not None and hasattr(r, "send"):
                await r
        except Exception as exc:
            self.callback_failed(name, exc)

    # -- methods and C2D ---------------------------------------------------------------

    async def _on_method(self, topic, payload):
        name, rid = bag.method_of(topic)
        try:
            body = loads(payload)
        except ValueError:
            self.bad_message(topic, ValueError("method %r: body is not JSON" % name))
            await self._respond(rid, 400, {"message": "request body is not JSON"})
            return
        self.counters["methods"] += 1
        if self._handlers.get("method") is None:
            await self._respond(rid, 404, {"message": "no handler for method %s" % name})
            return
        await self._call("method", "on_method_request_received", MethodRequest(rid, name, body))

    async def send_method_response(self, method_response):
        """Answer a MethodRequest: `$iothub/methods/res/{status}/?$rid={rid}`, JSON body."""
        r = method_response
        await self._respond(r.request_id, r.status, r.payload)

    async def _respond(self, rid, status, payload):
        topic = "$iothub/methods/res/%d/?$rid=%s" % (int(status), rid)
        await self.publish(topic, json.dumps(payload), 1)

    async def _on_c2d(self, topic, payload):
        n = len(self._filters[C2D]) - 1  # the topic up to the bag
        msg = bag.decode(bytes(topic[n:]), Message(bytes(payload)))
        self.counters["c2d"] += 1
        await self._call("c2d", "on_message_received", msg)
