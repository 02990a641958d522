"""Astarte properties kept in flash: the SDK's AstarteDatabase API on one small file.

    db = PropertyFile("/flash/astarte/<device_id>/caching/properties.bson")
    db.store_prop("org.x.Settings", 1, "/name", "board-1")     # None deletes
    db.load_prop("org.x.Settings", 1, "/name")                  # "board-1"
    db.load_all_props()                                         # [(iface, major, path, value)]

Any object with these methods works in its place (the `database=` argument of DeviceMqtt,
e.g. the SDK's AstarteDatabaseSQLite on CPython).

Power loss: the whole table is written as one BSON document to `<file>.tmp`, then renamed
over the file. A cut before the rename leaves the old file; after it, the new one. A port
whose rename does not replace (FAT) removes the old file first: a cut between the two
leaves only the .tmp, which load() then takes (it is complete: it was written and closed
before the rename). A torn or corrupt file is reported and treated as empty, never raised:
the server's copy comes back after the next connect (emptyCache resends server
properties; device properties are set again by the application).

The table is small (a few dozen properties): every change rewrites it, once. purge() and
a batch (`with db.batch():`) write once for many changes. Unlike the SDK (which never
stores 0, False, "" or 0.0), every value is kept.
"""

import os

from tether import log

_log = log.getLogger("astarte")


def makedirs(path):
    """mkdir -p (MicroPython's os has no makedirs)."""
    cur = ""
    for part in path.split("/"):
        cur = cur + "/" + part if cur or path.startswith("/") else part
        if part:
            try:
                os.mkdir(cur)
            except OSError:
                pass


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


class _Batch:
    def __init__(self, db):
        self.db = db

    def __enter__(self):
        self.db._hold += 1
        return self.db

    def __exit__(self, *exc):
        self.db._hold -= 1
        if not self.db._hold and self.db._dirty:
            self.db._save()


class PropertyFile:
    def __init__(self, path):
        self.path = path
        self._rows = {}  # (interface, path) -> [major, value]
        self._hold = 0
        self._dirty = False
        self.writes = 0
        self._load()

    # -- the AstarteDatabase API ------------------------------------------------------

    def store_prop(self, interface, major, path, value):
        if value is None:
            self.delete_prop(interface, path)
            return
        self._rows[(interface, path)] = [major, value]
        self._changed()

    def load_prop(self, interface, major, path):
        r = self._rows.get((interface, path))
        if r is None:
            return None
        if r[0] != major:  # a new major invalidates the old value (the SDK does the same)
            self.delete_prop(interface, path)
            return None
        return r[1]

    def delete_prop(self, interface, path):
        if self._rows.pop((interface, path), None) is not None:
            self._changed()

    def delete_props_from_interface(self, interface):
        for k in [k for k in self._rows if k[0] == interface]:
            del self._rows[k]
            self._dirty = True
        if self._dirty:
            self._changed()

    def load_all_props(self):
        return [(k[0], r[0], k[1], r[1]) for k, r in self._rows.items()]

    def clear(self):
        self._rows = {}
        self._changed()

    # -- more --------------------------------------------------------------------------

    def batch(self):
        """`with db.batch():` writes the file once, at the end, for all changes inside."""
        return _Batch(self)

    def __len__(self):
        return len(self._rows)

    def _changed(self):
        self._dirty = True
        if not self._hold:
            self._save()

    def _save(self):
        from tether import bson

        rows = [[k[0], r[0], k[1], r[1]] for k, r in self._rows.items()]
        data = bson.dumps({"p": rows})
        tmp = self.path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        try:
            os.rename(tmp, self.path)
        except OSError:  # FAT: rename does not replace
            try:
                os.remove(self.path)
            except OSError:
                pass
            os.rename(tmp, self.path)
        self._dirty = False
        self.writes += 1

    def _load(self):
        path = self.path
        if not _exists(path):
            if not _exists(path + ".tmp"):
                return
            path += ".tmp"  # cut between remove and rename (FAT): the new table is whole
        from tether import bson

        try:
            with open(path, "rb") as f:
                doc = bson.loads(f.read(), max_items=65536)
            for iface, major, p, value in doc["p"]:
                self._rows[(iface, p)] = [major, value]
        except Exception as exc:  # torn or corrupt: empty; the cloud's copy comes back
            _log.warning("properties file %s unreadable (%s): starting empty", path, exc)
            self._rows = {}
