"""The library's imports point downward: no module reaches itself through its imports,
lazy ones included (tests/test_tls_imports.py reads the arrows from the source).

The pairs in KNOWN are the exceptions left, each a module and the half split out of it
(loaded only when needed) importing names back from it. They are listed here so that a new
circle fails; breaking one means moving the names both use into a lower module, or having
the parent pass the half what it needs.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_tls_imports import graph  # noqa: E402

KNOWN = set()


def circles(arrows):
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on, stack, out = {}, {}, set(), [], []
    for root in arrows:
        if root in index:
            continue
        work = [(root, iter(sorted(arrows.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = set()
                    while True:
                        m = stack.pop()
                        on.discard(m)
                        comp.add(m)
                        if m == node:
                            break
                    if len(comp) > 1:
                        out.append(frozenset(comp))
            elif nxt not in index:
                index[nxt] = low[nxt] = len(index)
                stack.append(nxt)
                on.add(nxt)
                work.append((nxt, iter(sorted(arrows.get(nxt, ())))))
            elif nxt in on:
                low[node] = min(low[node], index[nxt])
    return out


def test_the_circle_finder_finds_a_circle():
    found = circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})
    assert found == [frozenset("abc")]


def test_no_import_circle_beyond_the_known_pairs():
    found = set(circles(graph()))
    assert found <= KNOWN, sorted(sorted(c) for c in found - KNOWN)


def test_the_session_the_cloud_sync_and_the_store_stats_import_only_downward():
    # Three pairs broken in stop 11: the lazily loaded half no longer imports its parent.
    arrows = graph()
    assert "tether.session" not in arrows["tether.session_diag"]
    assert "tether.cloud.client" not in arrows["tether.cloud.sync"]
    assert "tether.store_format" not in arrows["tether.store_diag"]


def test_the_cbor_decoder_the_full_store_and_the_composites_import_only_downward():
    # Three pairs broken in stop 12: the parent hands the lazily loaded half what it needs
    # (cbor, store), or no longer loads it (records: the package names the composites).
    arrows = graph()
    assert "tether.cbor" not in arrows["tether.cbor_decode"]
    assert "tether.store" not in arrows["tether.store_full"]
    assert "tether.arduino.composites" not in arrows["tether.arduino.records"]


def test_the_full_store_compares_the_store_s_own_policy_names():
    # tether.store_full compares st.policy with these strings instead of importing them.
    from tether import store

    assert (store.DROP_OLDEST, store.DROP_NEWEST, store.REJECT) == (
        "drop_oldest",
        "drop_newest",
        "reject",
    )
