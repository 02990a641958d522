"""SAPIoTClient: SAP IoT's MQTT gateway on the cloud base (tether.cloud), docs/sap.md.

    client = SAPIoTClient("dev-1", "demo.eu10.cp.iot.sap", cert="cert.der", key="key.der",
                          ca="root.der", on_command=on_command)
    asyncio.create_task(client.run())
    await client.wait_connected()
    code = await client.send_measures("env", [[21.5, "C"]], sensor_alternate_id="s1")  # 202

Per connection (protocols.md §4): the client id is the device alternate id, the client
certificate the only credential; SUBSCRIBE ack/{alt} and commands/{alt}; then the queued
measures go out in order as JSON on measures/{alt} at QoS 1. A measure is pending until
its ack (tether.sap.acks): 202 -> send_measures returns 202; an error code -> it raises
MeasureRefused (counted and logged with the code); no ack within ack_timeout_ms of its
PUBLISH, or the connection ending first -> MeasureUnconfirmed (counted and logged). Nothing
is dropped silently: a measure the queue has no room for ends DROPPED, counted, logged.
Measures made while offline wait in the queue (with a `store`, on flash through
tether.cloud.outbox, surviving a reboot) and go out after the reconnect.

Commands on commands/{alt} call `on_command(client, capability_alternate_id,
sensor_alternate_id, command_dict)` (it may be async) from the base's handler queue. A
malformed ack or command is counted (counters["bad_messages"]) and logged; the connection
stays. A refused connection is explained (tether.sap.refusal): `client.refusal`, and
`wait_connected()` / sync `start()` raise it.
"""

import json

from tether import log
from tether.cloud.client import CloudClient
from tether.compat import MICROPYTHON, ticks_add, ticks_diff, ticks_ms
from tether.errors import CredentialError
from tether.sap.acks import DROPPED, QUEUED, Acks, Measure, encode

_log = log.getLogger("sap")

_FOREVER = 0x3FFFFFFF
_COUNTERS = ("measures_sent", "acked", "refused", "unconfirmed", "dropped", "orphan_acks")


class SAPIoTClient(CloudClient):
    MAX_PACKET = 2048  # acks and commands are small JSON objects
    ACK_TIMEOUT_MS = 30000
    MAX_QUEUED = 32  # measures kept in RAM while offline (more: the oldest are dropped)
    CONNECT_TIMEOUT_MS = 60000

    def __init__(
        self,
        device_alternate_id,
        host,
        port=8883,
        cert=None,
        key=None,
        ca=None,
        keepalive=60,
        sync_mode=False,
        store=None,
        guard=None,
        on_command=None,
        on_ack=None,
        ack_timeout_ms=None,
        max_queued=None,
        server_hostname=None,
        base_dir=None,
    ):
        if cert is None or key is None or (ca is None and MICROPYTHON):
            # protocols.md §4.1: SAP's server certificate is from a public CA, but which root
            # is UNCONFIRMED, so no root is embedded; CPython uses the system store.
            from tether.sap.refusal import missing

            raise missing(cert is None or key is None)
        alt = device_alternate_id
        if isinstance(alt, (bytes, bytearray)):
            alt = alt.decode()
        CloudClient.__init__(
            self, alt, host, port, keepalive=keepalive, sync_mode=sync_mode, store=store,
            guard=guard,
        )  # fmt: skip
        self.device_alternate_id = alt
        self._cert, self._key, self._ca, self._base = cert, key, ca, base_dir
        self._sni = server_hostname
        self.se = None  # a secure element standing in for the board's (the unix port's fake)
        self.on_command = on_command
        self.on_ack = on_ack
        self.ack_timeout_ms = ack_timeout_ms or self.ACK_TIMEOUT_MS
        self.max_queued = max_queued or self.MAX_QUEUED
        self._t_measures = ("measures/" + alt).encode()
        self._t_ack = ("ack/" + alt).encode()
        self._t_commands = ("commands/" + alt).encode()
        self.acks = Acks()
        self._queue = []  # Measures not published yet (without a store)
        self._tracked = {}  # number -> Measure queued on the store (with one)
        self._n = 0
        self._boxed = False  # something was put on the outbox since the last flush
        self.outbox = None
        self.refusal = None  # SAPConnectError of the last refused connect, None once up
        self.not_after = None  # the client certificate's expiry (Unix s), when known
        c = self.counters
        for k in _COUNTERS:
            c[k] = 0
        c["commands"] = 0
        c["commands_unhandled"] = 0

    # -- measures ------------------------------------------------------------------------

    def queue_measures(self, capability_alternate_id, measures, sensor_alternate_id=None,
                       timestamp=None):  # fmt: skip
        """Queue one measure message without waiting: -> its Measure (state, code, latency)."""
        payload = encode(capability_alternate_id, measures, sensor_alternate_id, timestamp)
        m = Measure(capability_alternate_id, sensor_alternate_id, payload)
        m.cb = self._finished
        ob = self.outbox
        if ob is None:
            q = self._queue
            q.append(m)
            if len(q) > self.max_queued:
                for old in q:
                    if old.state == QUEUED:  # the head may be in its PUBLISH: not that one
                        q.remove(old)
                        old.finish(DROPPED, None, "queue full (max_queued=%d)" % self.max_queued)
                        break
        else:
            from tether.sap import stored

            stored.queue(self, m, payload)
        self.wake()
        return m

    def send_measures(self, capability_alternate_id, measures, sensor_alternate_id=None,
                      timestamp=None):  # fmt: skip
        """Send one measure message and wait for its ack: -> 202, or raise MeasureRefused
        (the gateway's error `code`) or MeasureUnconfirmed. Async mode: a coroutine
        (`await client.send_measures(...)`); sync mode: runs the client until the ack.

        measures: a list of samples, each a list of values in the capability's property
        order or a dict by property name. timestamp: epoch milliseconds (SAP: UNCONFIRMED).
        """
        m = self.queue_measures(capability_alternate_id, measures, sensor_alternate_id, timestamp)
        if self.async_mode:
            return self.wait_ack(m)
        if self._loop is None:
            raise _error("sync mode: call start() before send_measures()")
        return self._loop.run_until_complete(self.wait_ack(m))

    async def _running(self):
        # run() just created as a task has not begun yet: give it a few turns.
        for _ in range(10):
            if self._ev is not None:
                return
            await _pause()
        raise _error("the client is not running: asyncio.create_task(client.run()) first")

    async def wait_ack(self, m):
        """Wait for a queued Measure's fate: -> its ack code (202), or raise as
        send_measures does."""
        await self._running()
        await self.wait(lambda: m.done, _FOREVER)
        return m.result()

    def _finished(self, m):
        c = self.counters
        s = m.state
        if s == "acked":
            c["acked"] += 1
        elif s == "refused":
            c["refused"] += 1
            _log.warning("measure %s/%s refused: code %s %s", m.capability, m.sensor, m.code,
                         m.message or "")  # fmt: skip
        else:
            c["dropped" if s == DROPPED else "unconfirmed"] += 1
            _log.warning("measure %s/%s %s: %s", m.capability, m.sensor, s, m.message)
        if self.on_ack is not None:
            try:
                self.on_ack(self, m)
            except Exception as exc:
                self.callback_failed("on_ack", exc)
        self.wake()

    # -- connection ----------------------------------------------------------------------

    def tls_context(self):
        from tether import creds
        from tether.sap import refusal

        base = self._base
        cert = creds.load_cert(self._cert, base)
        self.not_after = refusal.not_after(cert)
        try:
            ctx = creds.tls_context(
                ca=self._ca, cert=cert, key=self._key, se=self.se, base_dir=base
            )
        except CredentialError as exc:
            if "encrypted" in str(exc):
                from tether.sap.refusal import CONVERT

                raise CredentialError("%s. For SAP's bundle: %s" % (exc, CONVERT))
            raise
        self._cert = self._key = self._ca = None  # built once: the sources are not needed
        return ctx

    def server_hostname(self):
        return self._sni or self.server

    async def _connect(self):
        try:
            m = await CloudClient._connect(self)
        except Exception as exc:
            from tether.sap.refusal import explain

            self.refusal = explain(self, exc)
            _log.error("cannot connect: %s", self.refusal)
            self.wake()
            raise
        self.refusal = None
        return m

    async def wait_connected(self, timeout_ms=None):
        """True once connected; raise SAPConnectError (why, and what to do) when a connect
        is refused for a reason retrying cannot fix, or after timeout_ms."""
        t = timeout_ms or self.CONNECT_TIMEOUT_MS
        await self._running()
        if await self.wait(self._up_or_refused, t) and self.connected:
            return True
        r = self.refusal
        if r is None:
            from tether.sap.refusal import SAPConnectError

            r = SAPConnectError(
                "not connected within %d ms (last error: %r)" % (t, self.session.last_error)
            )
        raise r

    def _up_or_refused(self):
        r = self.refusal
        return self.connected or (r is not None and r.permanent)

    def start(self, timeout_ms=None):
        """Async mode: run forever. Sync mode: return once connected (or raise as
        wait_connected does)."""
        if self.async_mode:
            return CloudClient.start(self)
        if self._loop is None:
            import asyncio

            self._loop = asyncio.new_event_loop()
            if hasattr(asyncio, "set_event_loop"):
                asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._begin())
        return self._loop.run_until_complete(self.wait_connected(timeout_ms))

    def stop(self):
        CloudClient.stop(self)
        loop = self._loop
        if not self.async_mode and loop is not None:
            # Sync mode: nothing runs the loop after this; let the session end its round.
            for _ in range(100):
                if self.session.state == "stopped":
                    break
                loop.run_until_complete(_pause())

    def ready(self):
        CloudClient.ready(self)
        self.wake()  # wait_connected() waits on `connected`: nothing else pulses then

    def begin(self):
        if self.store is not None:
            from tether.sap import stored

            stored.outbox(self)
            self._boxed = True  # an earlier boot's measures: replayed at the first connect

    async def serve(self):
        if self.outbox is not None:
            self._boxed = True  # a flush the last connection did not finish goes on
        await self.subscribe(self._t_ack, self._on_ack, inline=True)
        await self.subscribe(self._t_commands, self._on_command)
        self.ready()
        try:
            while True:
                await self._pump()
                self.acks.expire(ticks_ms(), self.ack_timeout_ms)  # counted, logged
                old = self.acks.oldest()
                wait = _FOREVER
                if old is not None:
                    wait = max(1, ticks_diff(ticks_add(old, self.ack_timeout_ms), ticks_ms()))
                await self.wait(self._has_work, min(wait, 60000))
        finally:
            self.acks.lost()  # a clean session: their acks cannot come on the next one

    def _has_work(self):
        return bool(self._queue) or self._boxed

    async def _pump(self):
        q = self._queue
        while q:
            m = q[0]
            if m.state == QUEUED:
                await self._send(m, m.payload)
            if q and q[0] is m:
                q.pop(0)
        if self._boxed:
            from tether.sap import stored

            await stored.pump(self)

    async def _send(self, m, payload):
        # Waiting before the PUBLISH: the gateway's ack may come before its PUBACK.
        self.acks.sent(m, ticks_ms())
        try:
            await self.publish(self._t_measures, payload, 1)
        except BaseException:
            self.acks.unsent(m)  # no PUBACK: sent again on the next connection
            raise
        self.counters["measures_sent"] += 1

    # -- cloud -> device -----------------------------------------------------------------

    def _on_ack(self, topic, payload):
        # Inline, in the MQTT reader: it only hands the ack to its measure.
        try:
            msg = json.loads(payload)
            code = msg["code"]
            if isinstance(code, str):
                code = int(code)
            if isinstance(code, bool) or not isinstance(code, int):
                raise ValueError("ack code %r is not a number" % (code,))
            cap = msg["capabilityAlternateId"]
            sensor = msg["sensorAlternateId"]
            text = msg.get("message")
        except Exception as exc:
            self.bad_message(topic, exc)
            return
        if self.acks.match(cap, sensor, code, text, ticks_ms()) is None:
            self.counters["orphan_acks"] += 1
            _log.warning("ack %s for %s/%s matches no measure waiting", code, cap, sensor)

    async def _on_command(self, topic, payload):
        msg = json.loads(payload)
        if not isinstance(msg, dict):
            raise ValueError("command is not a JSON object")
        cap = msg.get("capabilityAlternateId")
        sensor = msg.get("sensorAlternateId")
        cmd = msg.get("command")
        if not isinstance(cap, str) or not isinstance(sensor, str) or not isinstance(cmd, dict):
            raise ValueError("command without capabilityAlternateId, sensorAlternateId, command")
        self.counters["commands"] += 1
        h = self.on_command
        if h is None:
            self.counters["commands_unhandled"] += 1
            _log.warning("command for %s/%s and no on_command handler", cap, sensor)
            return
        try:
            r = h(self, cap, sensor, cmd)
            if r is not None and hasattr(r, "send"):
                await r
        except Exception as exc:
            self.callback_failed("on_command", exc)


async def _pause():
    import asyncio

    await asyncio.sleep(0)


def _error(text):
    from tether.sap.errors import SAPError

    return SAPError(text)
