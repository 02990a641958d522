"""One deadline scheduler for every periodic callback of a cloud client.

Instead of one asyncio task per callback (a task costs RAM and a wake-up each), the client
keeps a list of [due_ms, object] entries and its one timer task (tether.cloud.client) runs
whatever is due, then sleeps until the nearest deadline. An object has `run(client)`,
`next_interval_s()` and `interval` (the Arduino variables, Tasks and Schedules do).
Deadlines use ticks_ms, so a clock step cannot stall them.
"""

from tether.compat import ticks_add, ticks_diff, ticks_ms

# The loop never sleeps longer than this, so an object registered while the client runs
# gets its first turn within this many ms.
MAX_SLEEP_MS = 1000


class Scheduler:
    def __init__(self, on_error):
        self._entries = []  # [due_ms, obj]; a handful of entries, scanned linearly
        self._on_error = on_error  # on_error(obj, exc): the client counts and logs it

    def add(self, obj, now=None):
        """Schedule obj (it has .run(client) and .next_interval_s()); first turn at now."""
        for e in self._entries:
            if e[1] is obj:
                return
        self._entries.append([ticks_ms() if now is None else now, obj])

    def remove(self, obj):
        for e in self._entries:
            if e[1] is obj:
                self._entries.remove(e)
                return

    def __len__(self):
        return len(self._entries)

    def run_due(self, client, now=None):
        """Run every object whose deadline has passed; return ms until the next deadline.

        An exception in a callback is reported and the object keeps its place: a flaky
        sensor read must not silently unregister the variable.
        """
        if now is None:
            now = ticks_ms()
        wait = MAX_SLEEP_MS
        for e in self._entries:
            obj = e[1]
            if ticks_diff(e[0], now) <= 0:
                try:
                    obj.run(client)
                except Exception as exc:
                    self._on_error(obj, exc)
                # Next turn counted from the deadline, not from now, so turns do not
                # drift; after a long stall it restarts from now instead of bursting.
                due = ticks_add(e[0], int(obj.next_interval_s() * 1000))
                if ticks_diff(due, now) <= 0:
                    due = ticks_add(now, int(obj.interval * 1000))
                e[0] = due
            left = ticks_diff(e[0], now)
            if left < wait:
                wait = left
        return wait if wait > 0 else 0
