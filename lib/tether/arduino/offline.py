"""Store-and-forward for the Arduino client, loaded only when it has a `store`: values
changed while offline are saved at once (they survive a reboot) and delivered later.

    begin(client)        # run() starts: make the Outbox, restore what an earlier boot queued
    save_dirty(client)   # a local change: save every dirty variable not saved yet
"""

from tether.arduino import protocol
from tether.arduino.records import Task
from tether.senml import value_of

_CH = b"o"  # the outbox channel of values: /a/t/{thing}/e/o


def begin(client):
    ob = client.outbox
    if ob is None:
        from tether.cloud.outbox import Outbox

        ob = client.outbox = Outbox(client.store)
    client.store = ob.store  # queue depth and drops in diagnostics
    # Values an earlier boot queued but never delivered initialise the variables the app
    # left unset, as local changes not yet acknowledged: pushed again, and kept against
    # the cloud's (older) last values. Values for variables the app set are replayed.
    for _, _, e in ob.leftovers():
        try:
            restore(client, e.payload)
        except Exception as exc:
            client.bad_message("outbox", exc)


def save_dirty(client):
    # On flash at once: the change must survive a reboot before it is delivered.
    ob = client.outbox
    for obj in client.records.values():
        if obj.dirty and ob.needs(obj.name, obj._gen):
            ob.save(_CH, obj.name, obj._gen, protocol.pack((obj,)))


def restore(client, payload):
    """Values an earlier boot queued (outbox) initialise the variables the app left unset,
    as local changes not yet acknowledged (begin, below)."""
    touched = []
    for rec in protocol.decode_pack(payload):
        name = rec.get("n")
        value = value_of(rec)
        if type(name) is not str or value is None:
            continue
        i = name.find(":")
        obj = client.records.get(name if i < 0 else name[:i])
        field = None if i < 0 else name[i + 1 :]
        if obj is None or isinstance(obj, Task) or not obj.cloud_uninitialized(field):
            continue
        if field is None:
            obj.value = value
        else:
            obj.set_field(field, value)
        if obj not in touched:
            touched.append(obj)
    for obj in touched:
        if obj.on_write is not None and obj.initialized:
            try:
                obj.on_write(client, obj if obj._FIELDS else obj.value)
            except Exception as exc:
                client.callback_failed(obj, exc)
