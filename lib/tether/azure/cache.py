"""The DPS assignment kept in flash, so a reboot connects without provisioning again.

    doc = cache.load(path, id_scope, registration_id)   # None: absent, corrupt or stale
    cache.save(path, {"id_scope": ..., "registration_id": ..., "assigned_hub": ...,
                      "device_id": ...})
    cache.clear(path)                                   # the hub refused it: provision anew

Written to `path + ".tmp"` and renamed over `path`: a power cut leaves the old file or the
new one, never half of one. No secret is stored (the key stays in the secrets, or is
derived again from the group key at boot).
"""

import json
import os

_FIELDS = ("id_scope", "registration_id", "assigned_hub", "device_id")


def load(path, id_scope, registration_id):
    """The cached assignment for this scope and registration id, or None."""
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or any(not isinstance(doc.get(k), str) for k in _FIELDS):
        return None
    if doc["id_scope"] != id_scope or doc["registration_id"] != registration_id:
        return None  # the settings changed: that assignment is someone else's
    return doc


def save(path, doc):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({k: doc[k] for k in _FIELDS}, f)
    try:
        os.rename(tmp, path)
    except OSError:  # FAT does not rename over an existing file
        clear(path)
        os.rename(tmp, path)


def clear(path):
    try:
        os.remove(path)
    except OSError:
        pass
