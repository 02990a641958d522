"""tether.store against a model, with hypothesis choosing the operations (CPython).

Random sequences of telemetry and state puts, in-order and out-of-order acks, clean reboots
and power cuts (reopen without close), then a power cut in the middle of the last write:
what the store delivers must always be exactly what the model says is still owed.
"""

import os
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mpy import LIB

if str(LIB) not in sys.path:
    sys.path.insert(0, str(LIB))

from tether.store import Store, encode_record  # noqa: E402

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("tele"), st.binary(min_size=0, max_size=40)),
        st.tuples(st.just("state"), st.sampled_from([b"a", b"b", b"c"]), st.binary(max_size=30)),
        st.tuples(st.just("ack"), st.integers(min_value=0, max_value=3)),
        st.tuples(st.just("reboot"), st.booleans()),
    ),
    max_size=120,
)


def pending(store):
    return [(e.seq, e.key or None, e.payload) for e in store.pending()]


def replay(path, ops, seg_bytes):
    s = Store(path, seg_bytes=seg_bytes, max_segments=64)
    model = []  # (seq, key or None, payload), in order
    for op in ops:
        if op[0] == "tele":
            model.append((s.put_telemetry(op[1]), None, op[1]))
        elif op[0] == "state":
            model = [m for m in model if m[1] != op[1]]
            model.append((s.put_state(op[1], op[2]), op[1], op[2]))
        elif op[0] == "ack" and model:
            m = model[min(op[1], len(model) - 1)]
            assert s.ack(m[0])
            model.remove(m)
        elif op[0] == "reboot":
            if op[1]:
                s.close()
            s = Store(path, seg_bytes=seg_bytes, max_segments=64)  # else: power cut
        assert pending(s) == model
        assert s.depth == len(model)
    return s, model


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=OPS, seg_bytes=st.sampled_from([256, 1024, 4096]))
def test_the_store_always_owes_exactly_what_the_model_owes(tmp_path_factory, ops, seg_bytes):
    path = str(tmp_path_factory.mktemp("store"))
    s, model = replay(path, ops, seg_bytes)
    s.close()
    s = Store(path, seg_bytes=seg_bytes, max_segments=64)
    assert pending(s) == model
    s.close()


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=OPS, last=st.binary(min_size=1, max_size=40), cut=st.integers(min_value=1))
def test_a_power_cut_mid_write_loses_only_the_record_being_written(
    tmp_path_factory, ops, last, cut
):
    path = str(tmp_path_factory.mktemp("store"))
    s, model = replay(path, ops, 1024)
    seq = s.put_telemetry(last)
    s.close()
    segs = sorted(n for n in os.listdir(path) if n.startswith("s"))
    seg = os.path.join(path, segs[-1])
    n = len(encode_record(seq, 1, b"", last))
    size = os.path.getsize(seg)
    os.truncate(seg, size - 1 - (cut % (n - 1) if n > 1 else 0))
    s = Store(path, seg_bytes=1024, max_segments=64)
    assert pending(s) == model  # everything but the torn record
    again = s.put_telemetry(b"after")
    assert again > max([m[0] for m in model] + [0])
    s.close()
    s = Store(path, seg_bytes=1024, max_segments=64)
    assert pending(s) == model + [(again, None, b"after")]
    s.close()
