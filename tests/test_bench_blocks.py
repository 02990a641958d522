"""bench/blocks.py: the building-blocks part of `make bench` puts every bench module's rows
into one shape, survives a module that fails, and prints one table per module. Fast: fake
modules only (test_bench_smoke.py runs the real ones end to end)."""

import importlib
import inspect
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import blocks  # noqa: E402


def test_dict_rows_map_times_heap_and_single_values():
    rows = blocks.normalise(
        [
            {
                "figure": "SAS token",
                "unix_us": 26.3,
                "unix_min_us": 22.2,
                "unix_heap_b": 3744,
                "cpython_us": 9.9,
                "cpython_min_us": 9.1,
                "baseline_us": None,
            },
            {"figure": "smallest -X heapsize, ES256", "kb": 25},
            {"figure": "import tether.bson (.mpy), heap", "unix_heap_b": 9760},
            {"figure": "size: tether/rsa.mpy, armv6m", "bytes": 1318},
        ]
    )
    sas, heap, imp, size = rows
    assert (sas["unix"], sas["unix_min"], sas["cpython"], sas["heap_b"]) == (26.3, 22.2, 9.9, 3744)
    assert sas["unit"] == "us" and sas["reference"] is None
    assert (heap["unix"], heap["unit"]) == (25, "KB")
    assert (imp["unix"], imp["unit"], imp["heap_b"]) == (9760, "B", None)
    assert (size["unix"], size["unit"]) == (1318, "B")
    assert all("extra" not in r for r in rows)


def test_tuple_rows_merge_median_and_min_and_keep_unknown_values():
    rows = blocks.normalise(
        [
            ("RS256 mint (median)", 67.0, 15.0, 0.6, "ms"),
            ("RS256 mint (min)", 49.0, 11.0, 0.4, "ms"),
            ("heap: import tether.der (.mpy)", 7520, None, None, "B"),
            ("a row with a fourth value", 1, 2, 3, 4, "x"),
        ]
    )
    rs, der, odd = rows
    assert rs["figure"] == "RS256 mint"
    assert (rs["unix"], rs["unix_min"], rs["cpython"], rs["cpython_min"]) == (
        67.0,
        49.0,
        15.0,
        11.0,
    )
    assert rs["reference"] == 0.6 and rs["extra"] == {"reference_min": 0.4}
    assert (der["unix"], der["unit"]) == (7520, "B")
    assert odd["extra"] == {"value4": 4}


def test_tuple_columns_name_the_values():
    (r,) = blocks.normalise([("GET /json", 120.0, 900.0, "req/s")], columns=("unix", "cpython"))
    assert (r["unix"], r["cpython"], r["reference"], r["unit"]) == (120.0, 900.0, None, "req/s")


def _fake(name, run):
    mod = types.ModuleType(name)
    mod.run = run
    sys.modules[name] = mod
    return name


def test_a_failing_module_is_skipped_with_its_reason_and_the_rest_runs():
    def broken(quick=False):
        raise ValueError("tether.bson is half edited")

    def fine(quick=False):
        print("its own table")  # captured, not shown
        return [{"figure": "op", "unix_us": 2.0 if quick else 1.0}]

    fake = (
        blocks.Block("broken", _fake("bench_fake_broken", broken), lambda m, q: m.run(q)),
        blocks.Block("fine", _fake("bench_fake_fine", fine), lambda m, q: m.run(quick=q)),
    )
    try:
        res = blocks.run_blocks(quick=True, blocks=fake)
    finally:
        del sys.modules["bench_fake_broken"], sys.modules["bench_fake_fine"]
    assert "tether.bson is half edited" in res["bench_fake_broken"]["skipped"]
    assert "rows" not in res["bench_fake_broken"]
    assert res["bench_fake_fine"]["rows"][0]["unix"] == 2.0  # quick reached run()
    assert res["bench_fake_fine"]["output"] == "its own table\n"
    text = blocks.format_blocks(res)
    assert "skipped: bench_fake_broken failed: ValueError: tether.bson is half edited" in text
    assert "unix port" in text and "CPython" not in text  # only columns with values


def test_equal_sizes_print_once_and_different_ones_per_arch():
    rows = [
        {"figure": "size: tether/a.mpy, xtensawin", "bytes": 10},
        {"figure": "size: tether/a.mpy, armv6m", "bytes": 10},
        {"figure": "size: tether/b.mpy xtensawin", "bytes": 20},
        {"figure": "size: tether/b.mpy armv6m", "bytes": 21},
    ]
    entry = {"title": "t", "rows": blocks.normalise(rows)}
    text = blocks.format_blocks({"t": entry})
    assert "size: tether/a.mpy, xtensawin = armv6m" in text
    assert text.count("tether/a.mpy") == 1
    assert "size: tether/b.mpy xtensawin" in text and "size: tether/b.mpy armv6m" in text


def test_every_registered_module_imports_and_has_a_run():
    keys = [b.key for b in blocks.BLOCKS]
    assert len(keys) == len(set(keys))  # results.json's "blocks" is keyed by module name
    for b in blocks.BLOCKS:
        mod = importlib.import_module(b.module)
        assert callable(mod.run), b.module
        assert len(inspect.signature(b.call).parameters) == 2, b.module  # (module, quick)
