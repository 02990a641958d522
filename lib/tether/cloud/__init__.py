"""The cloud-client base: what every cloud profile (tether.arduino, ...) is built on.

    from tether.cloud import CloudClient

Modules, each importing only downward: client (lifecycle, session, MQTT, waits, renewal),
router (topic filters and the handler queue), requests (request/response correlation),
outbox (store-and-forward with channels), scheduler (periodic callbacks). Nothing is
imported here until a name is asked for.
"""

_attrs = {
    "CloudClient": "client",
    "Router": "router",
    "Requests": "requests",
    "Outbox": "outbox",
    "Scheduler": "scheduler",
}


_SUBMODULES = ("client", "connect", "tls", "sync", "router", "requests", "outbox", "scheduler")


def __getattr__(attr):
    # MicroPython asks here first for `from tether.cloud import connect`: import it.
    if attr in _SUBMODULES:
        return __import__("tether.cloud." + attr, None, None, [attr])
    mod = _attrs.get(attr)
    if mod is None:
        raise AttributeError(attr)
    value = getattr(__import__("tether.cloud." + mod, None, None, [attr]), attr)
    globals()[attr] = value
    return value
