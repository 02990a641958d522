"""The "building blocks" part of `make bench`: the figures of the small device modules (SAS,
BSON, zlib, P-256, RSA, JWT, keys, CSR, ...), each measured by its own bench module.

Every bench module here is runnable alone (`python -m bench.<name>`) and has a `run()` that
returns rows. This file calls them in turn, puts their rows into one shape and prints one
table per module. Adding a module is one line in BLOCKS:

    Block("HTTP client (tether.http)", "bench.http",
          lambda m, quick: m.run(20 if quick else 200), ("unix", "cpython")),

A row may be a dict (codecs2/crypto style: "figure", "unix_us", "unix_min_us",
"cpython_us", "cpython_min_us", "baseline_us", "unix_heap_b", "kb", "bytes") or a tuple
(name, value, ..., unit) whose values are named by the Block's `columns` (default: unix,
cpython, reference). Tuple rows "X (median)" followed by "X (min)" become one row.

A module that fails (a library module being edited, a reference package missing) is
recorded as skipped with the reason; the rest of the bench goes on.
"""

import contextlib
import importlib
import io
import re
import time
import traceback

# Normalised row: "figure", "unit" and any of these values (None when a row has none).
COLUMNS = ("unix", "unix_min", "cpython", "cpython_min", "reference", "heap_b")
HEADS = {
    "unix": "unix port",
    "unix_min": "(min)",
    "cpython": "CPython",
    "cpython_min": "(min)",
    "reference": "reference",
    "heap_b": "heap/call B",
}
# dict keys of the codecs2/crypto rows -> normalised columns (times in microseconds)
_DICT_TIMES = {
    "unix_us": "unix",
    "unix_min_us": "unix_min",
    "cpython_us": "cpython",
    "cpython_min_us": "cpython_min",
    "baseline_us": "reference",
}
# dict keys that hold a row's only value, and its unit
_DICT_SINGLE = {"unix_heap_b": "B", "bytes": "B", "kb": "KB"}


class Block:
    """One bench module in the building-blocks section.

    title: what the printed table is headed with. module: its import name. call(module,
    quick) -> rows. columns: the names (from COLUMNS) of the values of tuple rows.
    reference: what the "reference" column measures, for the heading.
    """

    def __init__(self, title, module, call, columns=None, reference=None):
        self.title = title
        self.module = module
        self.call = call
        self.columns = columns
        self.reference = reference

    @property
    def key(self):
        return self.module.rsplit(".", 1)[-1]


BLOCKS = (
    Block(
        "codecs: SAS token, BSON, zlib (tether.sas, bson, zlib)",
        "bench.codecs2",
        lambda m, quick: m.run(quick=quick),
        reference="azure-iot-device's recipe / pymongo C / CPython zlib",
    ),
    Block(
        "signing: ECDSA P-256 and RSA (tether.p256, rsa)",
        "bench.crypto",
        lambda m, quick: m.run(quick=quick),
        reference="cryptography (OpenSSL)",
    ),
    Block(
        "tokens: JWT, keys, CSR (tether.jwt, keys, csr, der)",
        "bench.tokens",
        lambda m, quick: m.run(quick=quick),
        reference="PyJWT + cryptography",
    ),
)


def normalise(rows, columns=None):
    """Rows of any bench module -> list of {"figure", "unit", COLUMNS..., "extra"?}."""
    out = []
    for row in rows:
        r = _from_dict(row) if isinstance(row, dict) else _from_tuple(row, columns)
        prev = out[-1] if out else None
        if (
            prev is not None
            and r["figure"].endswith(" (min)")
            and prev["figure"] == r["figure"][: -len(" (min)")] + " (median)"
            and prev["unit"] == r["unit"]
        ):
            _merge_min(prev, r)
            continue
        out.append(r)
    for r in out:
        if r["figure"].endswith(" (median)"):
            r["figure"] = r["figure"][: -len(" (median)")]
    return out


def _blank(figure, unit):
    r = {"figure": figure, "unit": unit}
    for c in COLUMNS:
        r[c] = None
    return r


def _from_dict(row):
    row = dict(row)
    figure = str(row.pop("figure", None) or row.pop("name", "?"))
    if any(k in row for k in _DICT_TIMES):
        r = _blank(figure, "us")
        for k, col in _DICT_TIMES.items():
            r[col] = row.pop(k, None)
        r["heap_b"] = row.pop("unix_heap_b", None)
    else:
        r = _blank(figure, row.pop("unit", ""))
        for k, unit in _DICT_SINGLE.items():
            if k in row:
                r["unix"] = row.pop(k)
                r["unit"] = unit
                break
    if row:
        r["extra"] = row
    return r


def _from_tuple(row, columns):
    name, values, unit = row[0], list(row[1:-1]), row[-1]
    names = list(columns or ("unix", "cpython", "reference"))
    r = _blank(str(name), unit)
    extra = {}
    for i, v in enumerate(values):
        if i < len(names):
            r[names[i]] = v
        else:
            extra["value%d" % (i + 1)] = v
    if extra:
        r["extra"] = extra
    return r


def _merge_min(median_row, min_row):
    """'X (min)' after 'X (median)': its values become the median row's min columns."""
    for col in ("unix", "cpython"):
        if min_row[col] is not None:
            median_row[col + "_min"] = min_row[col]
    if min_row["reference"] is not None:
        median_row.setdefault("extra", {})["reference_min"] = min_row["reference"]


def run_blocks(quick=False, blocks=BLOCKS, log=None):
    """Run every block: {key: {"title", "module", "reference", "seconds", "rows", "output"}}
    or {key: {..., "skipped": reason}} for a block that failed."""
    results = {}
    for b in blocks:
        if log:
            log("building blocks: " + b.module)
        entry = {"title": b.title, "module": b.module, "reference": b.reference}
        printed = io.StringIO()  # the modules print their own tables: keep, do not show
        t0 = time.monotonic()
        try:
            mod = importlib.import_module(b.module)
            with contextlib.redirect_stdout(printed):
                rows = b.call(mod, quick)
            entry["rows"] = normalise(rows, b.columns)
        except Exception as exc:  # one broken module must not stop the bench
            last = traceback.format_exception_only(type(exc), exc)[-1].strip()
            entry["skipped"] = "%s failed: %s" % (b.module, last)
            if log:
                log(entry["skipped"])
        entry["seconds"] = round(time.monotonic() - t0, 1)
        entry["output"] = printed.getvalue()
        results[b.key] = entry
    return results


def _fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        if abs(v) >= 100:
            return "%d" % round(v)
        return "%.2f" % v if abs(v) < 10 else "%.1f" % v
    return str(v)


def format_blocks(blocks, markdown=False):
    """One table per block, with only the columns that block has values in."""
    parts = []
    for entry in blocks.values():
        title = entry["title"]
        if entry.get("reference"):
            title += "; reference: " + entry["reference"]
        if "skipped" in entry:
            parts.append("%s\n  skipped: %s" % (title, entry["skipped"]))
            continue
        rows = _same_size_once(entry["rows"])
        cols = [c for c in COLUMNS if any(r.get(c) is not None for r in rows)]
        head = ["figure"] + [HEADS[c] for c in cols] + ["unit"]
        body = [[r["figure"]] + [_fmt(r.get(c)) for c in cols] + [r["unit"]] for r in rows]
        parts.append(title + "\n" + _table(head, body, markdown))
    return "\n\n".join(parts)


_SIZE_ROW = re.compile(r"^size: (\S+?),? (xtensawin|armv7emsp|armv7emdp|armv6m|x64)$")


def _same_size_once(rows):
    """For the table: a module's .mpy size rows, one per architecture, as one row when the
    sizes are equal (bytecode only: only the header's arch flag differs)."""
    by_path = {}
    for r in rows:
        m = _SIZE_ROW.match(r["figure"])
        if m:
            by_path.setdefault(m.group(1), []).append((m.group(2), r["unix"]))
    out, done = [], set()
    for r in rows:
        m = _SIZE_ROW.match(r["figure"])
        if not m:
            out.append(r)
            continue
        path = m.group(1)
        archs = by_path[path]
        if len({v for _, v in archs}) != 1:
            out.append(r)
        elif path not in done:
            done.add(path)
            one = dict(r)
            one["figure"] = "size: %s, %s" % (path, " = ".join(a for a, _ in archs))
            out.append(one)
    return out


def _table(head, body, markdown):
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in body])
    widths = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]
    return "\n".join(
        "  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r))
        for r in [head] + body
    )
