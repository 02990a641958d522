"""`make bench`'s client figures as tables: medians over runs, then text or markdown."""

from bench.stats import percentile, ratio, summary


def _per_run(runs, key, fn):
    return [fn(r[key]) for r in runs if r.get(key)]


def collate(full):
    """Medians over runs; within a run, latency percentiles over its samples."""
    lat, tput, start, stalls = {}, {}, {}, {}
    for key, runs in full.items():
        lat[key] = {
            "rtt_p50_ms": summary(_per_run(runs, "rtt", lambda v: percentile(v, 50)), 2),
            "rtt_p95_ms": summary(_per_run(runs, "rtt", lambda v: percentile(v, 95)), 2),
            "rtt_max_ms": summary(_per_run(runs, "rtt", max), 2),
            "local_p50_ms": summary(_per_run(runs, "local", lambda v: percentile(v, 50)), 2),
            "local_p95_ms": summary(_per_run(runs, "local", lambda v: percentile(v, 95)), 2),
            "local_max_ms": summary(_per_run(runs, "local", max), 2),
        }
        tput[key] = {
            k: summary([r[k] for r in runs], 0)
            for k in ("tput_messages_s", "tput_records_s", "tput_reads_s")
        }
        start[key] = {
            k: summary([r[k] for r in runs], 1)
            for k in (
                "start_interpreter_ms",
                "start_connected_ms",
                "start_ready_ms",
                "start_first_value_ms",
                "connect_only_ms",
            )
        }
        if not key.startswith("baseline"):
            stalls[key] = {
                "connect_ms": summary([r["stall_connect_ms"] for r in runs], 0),
                "burst_ms": summary([r["stall_burst_ms"] for r in runs], 0),
                "burst_received": summary([r["burst_received"] for r in runs], 0),
                "burst_s": summary([r["burst_s"] for r in runs], 2),
            }
    return {"latency": lat, "throughput": tput, "startup": start, "stalls": stalls, "raw": full}


def _m(s, key="median"):
    return None if s is None else s.get(key)


def table_rows(res):
    """(figure, median, min, max, unit, ratio vs baseline) rows for the table."""
    rows = []

    def add(name, s, unit, base=None, invert=False):
        if s is None:
            rows.append((name, None, None, None, unit, None))
            return
        r = None
        if base is not None:
            r = ratio(_m(base), _m(s)) if invert else ratio(_m(s), _m(base))
        rows.append((name, _m(s), _m(s, "min"), _m(s, "max"), unit, r))

    mem = res["memory"]
    add("heap: library import (.mpy)", mem["import_delta_mpy"], "B")
    add("heap: library import (.py source)", mem["import_delta_source"], "B")
    for tname in ("tls", "tcp"):
        for n in (1, 10, 50):
            v = mem["by_vars"]["%s_%d" % (tname, n)]
            if n == 10 or tname == "tls":
                add("heap: connected, %d vars, %s" % (n, tname.upper()), v["heap_connected"], "B")
                add("heap: steady, %d vars, %s" % (n, tname.upper()), v["heap_steady"], "B")
    rows.append(
        ("heap: per variable (steady, TLS)", mem["per_variable_steady"], None, None, "B", None)
    )
    for tname in ("tcp", "tls"):
        h = res["min_heap"][tname]
        rows.append(("smallest -X heapsize, %s" % tname.upper(), h["kb"], None, None, "KB", None))
    tm = res["tls_malloc"]
    if "skipped" in tm:
        rows.append(
            ("mbedTLS malloc (outside GC heap)", "skipped: " + tm["skipped"], None, None, "", None)
        )
    else:
        add("mbedTLS malloc peak (massif)", tm["mbedtls_peak"], "B")
        add("malloc peak TLS - TCP (massif)", tm["tls_minus_tcp"], "B")
    lat, tp, st = res["latency"], res["throughput"], res["startup"]
    for tname in ("tls", "tcp"):
        T = tname.upper()
        bl, bt, bs = lat["baseline_" + tname], tp["baseline_" + tname], st["baseline_" + tname]
        me = lat[tname]
        add("write round trip p50, %s" % T, me["rtt_p50_ms"], "ms", bl["rtt_p50_ms"])
        add("write round trip p95, %s" % T, me["rtt_p95_ms"], "ms", bl["rtt_p95_ms"])
        add("write round trip max, %s" % T, me["rtt_max_ms"], "ms", bl["rtt_max_ms"])
        add("local change -> emulator p50, %s" % T, me["local_p50_ms"], "ms", bl["local_p50_ms"])
        add("local change -> emulator p95, %s" % T, me["local_p95_ms"], "ms", bl["local_p95_ms"])
        me = tp[tname]
        add(
            "throughput, %s: records/s" % T, me["tput_records_s"], "/s", bt["tput_records_s"], True
        )
        add(
            "throughput, %s: messages/s" % T,
            me["tput_messages_s"],
            "/s",
            bt["tput_messages_s"],
            True,
        )
        me = st[tname]
        add(
            "start: process -> interpreter up, %s" % T,
            me["start_interpreter_ms"],
            "ms",
            bs["start_interpreter_ms"],
        )
        add(
            "start: process -> connected, %s" % T,
            me["start_connected_ms"],
            "ms",
            bs["start_connected_ms"],
        )
        add("start: process -> discovery done, %s" % T, me["start_ready_ms"], "ms")
        add(
            "start: process -> first value at emulator, %s" % T,
            me["start_first_value_ms"],
            "ms",
            bs["start_first_value_ms"],
        )
    for tname in ("tls", "tcp"):
        T = tname.upper()
        add("longest loop stall: connect, %s" % T, res["stalls"][tname]["connect_ms"], "ms")
        add(
            "longest loop stall: %d incoming writes, %s" % (res["settings"]["burst"], T),
            res["stalls"][tname]["burst_ms"],
            "ms",
        )
    for arch, s in res["size"]["by_arch"].items():
        rows.append(("size: library .mpy, %s" % arch, s["library_mpy"], None, None, "B", None))
        rows.append(
            (
                "size: frozen manifest contents .mpy, %s" % arch,
                s["frozen_manifest_mpy"],
                None,
                None,
                "B",
                None,
            )
        )
    return rows


def _fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        if abs(v) >= 100:
            return "%d" % round(v)
        return "%.2f" % v if abs(v) < 10 else "%.1f" % v
    return str(v)


def format_table(res, markdown=False):
    rows = table_rows(res)
    head = ("figure", "median", "min", "max", "unit", "x baseline")
    body = [tuple(_fmt(c) if i else c for i, c in enumerate(r)) for r in rows]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in body]
        return "\n".join(lines)
    widths = [max(len(str(r[i])) for r in [head] + body) for i in range(len(head))]
    out = []
    for r in [head] + body:
        out.append(
            "  ".join(
                str(c).ljust(widths[i]) if i == 0 else str(c).rjust(widths[i])
                for i, c in enumerate(r)
            )
        )
    return "\n".join(out)


def format_details(res, markdown=False):
    """Per module: heap added at import (.mpy, unix port) and .mpy bytes per architecture."""
    mods = res["memory"].get("import_by_module", {})
    sizes_ = res["size"]["modules"]
    archs = list(res["size"]["by_arch"])
    same = all(len(set(v.values())) == 1 for v in sizes_.values())
    heap_of = {}
    for dotted, s in mods.items():
        path = dotted.replace(".", "/")
        key = path + "/__init__.mpy" if path + "/__init__.mpy" in sizes_ else path + ".mpy"
        heap_of[key] = s
    cols = ["all archs"] if same else archs
    head = ["module", "import heap (B)"] + [".mpy %s (B)" % a for a in cols]
    rows = []
    for path in sorted(sizes_):
        heap = heap_of.get(path)
        size_cells = [_fmt(sizes_[path].get(archs[0] if same else a)) for a in cols]
        rows.append([path, _fmt(heap["median"]) if heap else "-"] + size_cells)
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    return "\n".join(
        "  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r))
        for r in [head] + rows
    )


def header(res):
    m, v = res["machine"], res["versions"]
    return (
        "machine: %s, %s cores, %s, load average at start %s\n"
        "versions: MicroPython %s (mbedTLS %s), CPython %s, amqtt %s, paho-mqtt %s, "
        "mosquitto %s, Tether %s (%s)\n"
        "profile %s: median of %d runs (memory %d), %.0f s; runs tried again: %d, errors on "
        "the emulator's loop: %d"
        % (
            m["cpu"],
            m["cores"],
            m["os"],
            m.get("loadavg_at_start"),
            v["micropython"],
            v["mbedtls"],
            v["cpython"],
            v["amqtt"],
            v["paho-mqtt"],
            v["mosquitto"],
            v["tether"],
            v["tether_commit"],
            res["profile"],
            res["settings"]["runs"],
            res["settings"]["mem_runs"],
            res["duration_s"],
            len(res.get("failed_attempts", ())),
            res.get("emulator_loop_errors", {}).get("count", 0),
        )
    )
