"""Measures that wait for SAP IoT's acks: a Measure per message, matched to its ack in order.

    acks = Acks()
    m = Measure("cap", "sensor", payload)      # queued by the client
    acks.sent(m, now)                          # before its PUBLISH: an ack may beat the PUBACK
    acks.match("cap", "sensor", 202, None, now)   # from ack/{alternateId} -> the Measure
    acks.expire(now, timeout_ms)               # those past their time: unconfirmed
    acks.lost()                                # the connection ended: none of them can be acked

SAP's ack names only the capability and the sensor (protocols.md §4.4), so an ack completes
the oldest measure sent for that pair and still waiting: per pair, the gateway acks in the
order it received (QoS 1 on one connection keeps that order). An ack nobody waits for
counts in `orphans`. A connection is a clean session: measures still waiting when it ends
cannot get their ack on the next one, so they end as unconfirmed then, not silently later.
"""

import json

from tether.compat import ticks_diff

ACCEPTED = 202

# Measure.state
QUEUED = "queued"  # not published yet (offline, or behind others)
SENT = "sent"  # published, waiting for its ack
ACKED = "acked"  # 202
REFUSED = "refused"  # an error code
UNCONFIRMED = "unconfirmed"  # no ack in time, or the connection ended first
DROPPED = "dropped"  # never published: the queue or the store had no room


class Measure:
    """One measure message and its fate. `state` (QUEUED, SENT, ACKED, REFUSED, UNCONFIRMED,
    DROPPED), `code` (the ack's), `message` (the ack's text, or why unconfirmed),
    `latency_ms` (PUBLISH to ack), `done`."""

    def __init__(self, capability, sensor, payload):
        self.capability = capability
        self.sensor = sensor
        self.payload = payload  # None once it is on the store (the store holds it)
        self.state = QUEUED
        self.code = None
        self.message = None
        self.t_sent = 0
        self.latency_ms = None
        self.cb = None  # client's completion hook

    @property
    def done(self):
        return self.state not in (QUEUED, SENT)

    def result(self):
        """The ack code (202), or raise MeasureRefused / MeasureUnconfirmed."""
        s = self.state
        if s == ACKED:
            return self.code
        from tether.sap import errors  # loaded only when a measure fails

        if s == REFUSED:
            raise errors.MeasureRefused(self)
        if s in (UNCONFIRMED, DROPPED):
            raise errors.MeasureUnconfirmed(self)
        raise errors.SAPError("measure still %s" % s)

    def finish(self, state, code, message, now=None):
        self.state = state
        self.code = code
        self.message = message
        if now is not None and state in (ACKED, REFUSED):
            self.latency_ms = ticks_diff(now, self.t_sent)
        self.payload = None
        if self.cb is not None:
            self.cb(self)

    def __repr__(self):
        return "<Measure %s/%s %s %s>" % (self.capability, self.sensor, self.state, self.code)


class Acks:
    """The measures sent and waiting for their ack, oldest first."""

    def __init__(self):
        self.waiting = []
        self.orphans = 0

    def sent(self, m, now):
        m.state = SENT
        m.t_sent = now
        self.waiting.append(m)

    def unsent(self, m):
        """Its PUBLISH failed before a PUBACK: back to QUEUED (sent again), unless acked."""
        if m in self.waiting:
            self.waiting.remove(m)
            m.state = QUEUED

    def match(self, capability, sensor, code, message, now):
        """Complete the oldest measure waiting for (capability, sensor); it or None."""
        for m in self.waiting:
            if m.capability == capability and m.sensor == sensor:
                self.waiting.remove(m)
                if code == ACCEPTED:
                    m.finish(ACKED, code, message, now)
                else:
                    m.finish(REFUSED, code, message, now)
                return m
        self.orphans += 1
        return None

    def oldest(self):
        """When the oldest waiting measure was sent (ticks), or None."""
        w = self.waiting
        return w[0].t_sent if w else None

    def expire(self, now, timeout_ms):
        """Measures sent more than timeout_ms ago without an ack: unconfirmed. -> them."""
        out = []
        for m in list(self.waiting):
            if ticks_diff(now, m.t_sent) >= timeout_ms:
                self.waiting.remove(m)
                m.finish(UNCONFIRMED, None, "no ack within %d ms" % timeout_ms)
                out.append(m)
        return out

    def lost(self):
        """The connection ended: every waiting measure is unconfirmed. -> them."""
        out = self.waiting
        self.waiting = []
        for m in out:
            m.finish(UNCONFIRMED, None, "the connection ended before its ack")
        return out


def _check_value(v):
    if isinstance(v, float) and (v != v or v in (_INF, -_INF)):
        raise ValueError("measure value %r is not a finite number (JSON has none)" % v)


_INF = float("inf")


def encode(capability, measures, sensor, timestamp):
    """One measure message as the gateway takes it (bytes, JSON); ValueError saying what
    does not fit (protocols.md §4.4)."""
    if not isinstance(capability, str) or not capability:
        raise ValueError("capability_alternate_id must be a non-empty str")
    if not isinstance(sensor, str) or not sensor:
        raise ValueError("sensor_alternate_id must be a non-empty str")
    if not isinstance(measures, (list, tuple)) or not measures:
        raise ValueError("measures must be a non-empty list of samples")
    samples = []
    for s in measures:
        if isinstance(s, (list, tuple)):
            for v in s:
                _check_value(v)
            samples.append(list(s))
        elif isinstance(s, dict):
            for v in s.values():
                _check_value(v)
            samples.append(s)
        else:
            raise ValueError(
                "a sample is a list (property order) or a dict (by name), not %s"
                % type(s).__name__
            )
    body = {"capabilityAlternateId": capability, "sensorAlternateId": sensor, "measures": samples}
    if timestamp is not None:
        body["timestamp"] = int(timestamp)
    return json.dumps(body, separators=(",", ":")).encode()
