"""The scheduler moved to tether.cloud.scheduler (every cloud client has one); this name stays
for code that imported it from here."""

from tether.cloud.scheduler import MAX_SLEEP_MS, Scheduler  # noqa: F401
