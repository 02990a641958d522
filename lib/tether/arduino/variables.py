"""The variables side of arduino-iot-cloud-py's API, mixed into ArduinoCloudClient:
register(), client["name"] to read and write, `in`, get(), update_systime().

A variable change calls the client's _changed() (each object's _client is the client), which
queues the push; scheduled variables (on_read, on_run, Tasks, Schedules) join the
client's one scheduler.
"""

from tether import log
from tether.arduino.records import CloudObject

_log = log.getLogger("arduino")

_TZ_NAMES = ("tz_offset", "tz_dst_until")


class Variables:
    def register(self, aiotobj, coro=None, **kwargs):
        """register("name", value=None, on_read=..., on_write=..., on_run=..., interval=1.0)
        or register(obj) for a composite type or a Task. Returns the object."""
        if isinstance(aiotobj, str):
            aiotobj = CloudObject(aiotobj, **kwargs)
            if aiotobj.value is None and aiotobj.on_read is not None:
                # A first reading now, so the value can go out with the first push. A
                # sensor that fails here is handled like at any later turn: counted and
                # logged, the variable registered anyway; the scheduler reads it again.
                try:
                    aiotobj.value = aiotobj.on_read(self)
                except Exception as exc:
                    self.callback_failed(aiotobj, exc)
        elif not isinstance(aiotobj, CloudObject):
            raise TypeError("register() takes a name or a cloud object")
        old = self.records.get(aiotobj.name)
        if old is not None and self._sched is not None:
            self.scheduler.remove(old)
        self.records[aiotobj.name] = aiotobj
        aiotobj._client = self
        if aiotobj.scheduled:
            self.scheduler.add(aiotobj)
        if aiotobj.dirty:
            self._changed()
        return aiotobj

    def __getitem__(self, key):
        if key in _TZ_NAMES:
            return getattr(self, key)
        if key == "thing_id":
            return self.thing_id
        obj = self.records[key]
        return obj if obj._FIELDS else obj.value

    def __setitem__(self, key, value):
        self.records[key].value = value

    def __contains__(self, key):
        return key in self.records or key in _TZ_NAMES or key == "thing_id"

    def get(self, key, default=None):
        if key in self:
            value = self[key]
            if value is not None:
                return value
        return default

    def update_systime(self, server=None, timeout=None):
        """Set the clock from NTP now (MicroPython boards; no-op where the OS keeps time)."""
        try:
            import ntptime
        except ImportError:
            return
        try:
            ntptime.host = server or self.ntp_server
            ntptime.timeout = timeout or self.ntp_timeout
            ntptime.settime()
        except Exception as exc:
            _log.error("NTP failed: %s", exc)
