"""Measures on flash (a SAPIoTClient with a `store`): loaded only when the client has one.

    stored.queue(client, m, payload)   # put on the outbox (tether.cloud.outbox), tracked
    await stored.pump(client)          # an earlier boot's first, then this boot's, in order

Each measure is one outbox entry on channel b"m<n>" (n: its number this boot), so the
entry that goes out is matched to the Measure someone waits for. An earlier boot's entries
have no waiter: their acks are still matched and counted (an untracked Measure). At most
`max_queued` Measures are tracked in RAM; an older one is let go (UNCONFIRMED, "still
queued on the store") but stays on flash and is delivered later.
"""

import json

from tether.sap.acks import DROPPED, UNCONFIRMED, Measure

_CH = b"m"  # outbox channel of measures: b"m" + the measure's number (this boot)


def outbox(client):
    ob = client.outbox
    if ob is None:
        from tether.cloud.outbox import Outbox

        ob = client.outbox = Outbox(client.store)
    return ob


def queue(client, m, payload):
    """Put a Measure's payload on the store; it ends DROPPED when the store refuses it."""
    client._n += 1
    m.payload = None  # the store holds it
    try:
        seq = client.outbox.put(_CH + str(client._n).encode(), payload)
    except Exception as exc:  # StoreFull (policy REJECT), a flash error
        seq = exc
    if seq is None or isinstance(seq, Exception):
        m.finish(DROPPED, None, "the store refused it (%s)" % (seq or "full"))
        return
    t = client._tracked
    t[client._n] = m
    client._boxed = True
    if len(t) > client.max_queued:
        # Still on the store and delivered later; only its waiter is let go.
        old = t.pop(min(t))
        old.finish(UNCONFIRMED, None, "still queued on the store (RAM tracking full)")


async def pump(client):
    """Deliver what is on the store: an earlier boot's entries, then this boot's."""
    ob = client.outbox
    client._boxed = False

    async def send_old(channel, payload):
        # An earlier boot's measure: nobody waits for it, its ack is matched and counted.
        await client._send(_untracked(payload, client), payload)

    async def send_boxed(channel, payload):
        n = int(channel[1:])
        m = client._tracked.get(n)
        if m is None:  # its waiter was let go: the ack is still matched and counted
            m = _untracked(payload, client)
        await client._send(m, payload)
        client._tracked.pop(n, None)

    await ob.replay(send_old)
    await ob.flush(send_boxed)
    # flush() delivered (or found dropped) everything put so far: a tracked measure not
    # sent by now was dropped by the store when it was full.
    t = client._tracked
    for k in list(t):
        t.pop(k).finish(DROPPED, None, "dropped by the store (full)")


def _untracked(payload, client):
    msg = json.loads(payload)
    m = Measure(msg.get("capabilityAlternateId"), msg.get("sensorAlternateId"), None)
    m.cb = client._finished
    return m
