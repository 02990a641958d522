"""Astarte interfaces read for DeviceMqtt: interface JSON or the compact form.

    iface = read("/flash/interfaces/org.x.Sensors.json")    # or .ifc (the compact form)
    iface = parse(interface_json_dict)
    c = compact(iface); iface = from_compact(c)

The run-time objects are tether.astarte.model's (Interface, Mapping: re-exported here).
JSON is checked by the parser (tether.astarte.interfaces, dropped again on a board once the
interfaces are read); the compact form (`from_compact`, what tools/astarte_ifc.py writes on
the host) needs no parser on the board at all.
"""

from tether.astarte.model import Interface, Mapping

# The compact form (a JSON list, written on the host by tools/astarte_ifc.py from checked
# interface JSON): [name, major, minor, "d"|"p", "device"|"server", "i"|"o",
# [[endpoint, type, qos, explicit_timestamp 0/1, allow_unset 0/1], ...]].


def compact(iface):
    t = "d" if iface.type == "datastream" else "p"
    a = "o" if iface.aggregation == "object" else "i"
    ms = [
        [m.endpoint, m.type, m.qos, int(m.explicit_timestamp), int(m.allow_unset)]
        for m in iface.mappings
    ]
    return [iface.name, iface.version_major, iface.version_minor, t, iface.ownership, a, ms]


def from_compact(c):
    """An Interface from its compact form (trusted: the host checked the JSON)."""
    try:
        name, major, minor, t, own, a, ms = c
        mappings = [Mapping(e, ty, q, bool(ts), bool(u)) for e, ty, q, ts, u in ms]
        return Interface(
            name,
            major,
            minor,
            "datastream" if t == "d" else "properties",
            own,
            "object" if a == "o" else "individual",
            mappings,
        )
    except (TypeError, ValueError, AttributeError) as exc:
        from tether.astarte.errors import InterfaceFileDecodeError

        raise InterfaceFileDecodeError("compact interface: %s" % exc)


# Reading interfaces (DeviceMqtt calls these through build_once: the parser goes again).


def _parser(what):
    # The parser is the component tether-astarte-json: a board image reads the compact form
    # unless it asks for the parser (4.3 KB of flash).
    try:
        from tether.astarte.interfaces import Interface, load
    except ImportError:
        from tether.astarte.errors import InterfaceFileDecodeError

        raise InterfaceFileDecodeError(
            "%s: interface JSON needs the parser, not in this image: precompile it on the "
            "host (python -m tools.astarte_ifc) or add the tether-astarte-json component" % what
        )
    return Interface, load


def parse(interface_json):
    """An Interface from interface JSON (a dict), checked by tether.astarte.interfaces."""
    return _parser("interface")[0](interface_json)


def read(path):
    """An Interface from a file: interface JSON (*.json) or the compact form (*.ifc)."""
    if not path.endswith(".ifc"):
        return _parser('"%s"' % path)[1](path)
    import json

    try:
        with open(path) as f:
            c = json.loads(f.read())
    except (OSError, ValueError) as exc:
        from tether.astarte.errors import InterfaceFileNotFoundError

        raise InterfaceFileNotFoundError('"%s": %s' % (path, exc))
    return from_compact(c)


def read_all(d, names):
    return [read(d + "/" + n) for n in names]
