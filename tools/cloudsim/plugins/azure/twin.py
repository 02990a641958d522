"""A device twin: desired and reported sections, each with its own `$version`
(protocols.md §2.3).

GET answers {"desired": {..., "$version": d}, "reported": {..., "$version": r}}. A patch
merges recursively: a member set to null is deleted, an object merges into an object, any
other value replaces. Every accepted patch adds 1 to its section's version, as the hub does
(the numbers are the hub's own: a device may only compare them).
"""

import copy


def merge(target, patch):
    """Apply a JSON merge patch (RFC 7396 rules) to target in place."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict):
            node = target.get(key)
            if not isinstance(node, dict):
                node = target[key] = {}
            merge(node, value)
        else:
            target[key] = copy.deepcopy(value)


class Twin:
    def __init__(self, desired=None):
        self.desired = {}
        self.reported = {}
        self.desired_version = 1
        self.reported_version = 1
        if desired:
            merge(self.desired, desired)

    def document(self):
        """The GET reply body (a deep copy)."""
        return {
            "desired": dict(copy.deepcopy(self.desired), **{"$version": self.desired_version}),
            "reported": dict(copy.deepcopy(self.reported), **{"$version": self.reported_version}),
        }

    def patch_reported(self, patch):
        """Merge a device's reported patch (a dict); -> the new reported $version."""
        merge(self.reported, {k: v for k, v in patch.items() if not k.startswith("$")})
        self.reported_version += 1
        return self.reported_version

    def patch_desired(self, patch):
        """Merge a service-side desired patch; -> (new $version, the notification body)."""
        merge(self.desired, patch)
        self.desired_version += 1
        body = dict(copy.deepcopy(patch), **{"$version": self.desired_version})
        return self.desired_version, body
