"""The soak harness's board (tools/soak.py: tether.session + tether.store's telemetry
queue, hand-wired, no cloud client) on the MicroPython unix port, publishing numbered QoS 1
values through tools/faultproxy.py to mosquitto: what `make soak` runs for minutes, held
here to the two cases only it covers. A power cut with 150 values queued on flash loses
none; 200 KB messages are drained without stalling the loop.

The fault matrix (broker restart, cut mid-publish, black hole, refused reconnects, WiFi,
malformed messages, clock jumps) runs against the product client, ArduinoCloudClient, in
tests/test_faults_product.py.

Figures (longest loop stall by phase, duplicates) are printed: run with -s.
"""

import sys
import time

import pytest
from mpy import ROOT

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.soak import Rig  # noqa: E402

pytestmark = pytest.mark.timeout(120)

STALL_BOUND_MS = 1000  # reported, bounded only loosely (no timing races on CI)


@pytest.fixture
def rig(tmp_path):
    with Rig(tmp_path) as r:
        yield r


def ready(rig, **cfg):
    b = rig.start_board(**cfg)
    b.wait(lambda s: s["state"] == "ready", 20, "first connection")
    assert rig.wait_delivered(10, 10), "no values flowing before the fault"
    return b


def finish(rig, b, what):
    end = b.finish(60)
    v = rig.verdict()
    print(
        "\n%s: produced %d, delivered %d, lost %d, duplicates %d, reconnects %d, "
        "longest stall %d ms %s, heap min %s"
        % (
            what,
            v["produced"],
            v["delivered"],
            v["lost"],
            v["duplicates"],
            end["reconnects"],
            end["stall_ms"],
            end["stall_by_phase"],
            end["heap_min"],
        )
    )
    assert v["lost"] == 0, v
    assert v["unexpected"] == [], v
    assert end["dropped"] == 0 and end["store_full"] == 0, end
    assert end["stall_ms"] < STALL_BOUND_MS, end
    return v, end


def test_a_restart_with_values_queued_delivers_them_after_the_restart(rig, tmp_path):
    rig.proxy.refuse()  # offline from the start
    b = rig.start_board(count=150, period_ms=5)
    deadline = time.monotonic() + 20
    while b.produced_line is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert b.produced_line == {"last": 150, "n": 150}, b.tail[-20:]
    assert b.status is None or b.status["connects"] == 0
    b.kill()  # power cut: only the store on disk survives
    rig.proxy.resume()
    b2 = rig.start_board(count=20, first=151, period_ms=5)
    b2.wait(lambda s: not s["producing"], 20, "20 more values")
    end = b2.finish(60)
    assert end["last"] == 170, end
    v = rig.verdict(1, 170)
    print("\nrestart with 150 queued: %s, stall %d ms" % (v, end["stall_ms"]))
    assert v["lost"] == 0 and v["delivered"] == 170, v


def test_big_messages_are_drained_without_stalling_the_loop(rig):
    b = ready(rig)
    before = b.status["connects"]
    for _ in range(5):
        rig.collector.publish("soak/cmd", b"\x5a" * 200_000)  # 100 x max_packet
    rig.collector.publish("soak/cmd", b"\x59\x07\xd0" + b"y" * 2000)  # a 2003-byte text: fits
    st = b.wait(lambda s: s["messages_in"] >= 1, 20, "the fitting message")
    b.wait(lambda s: s["mqtt_oversize_dropped"] == 5, 20, "5 oversize messages drained")
    v, end = finish(rig, b, "5 x 200 KB oversize + 1 fitting message")
    assert end["connects"] == before and st["bad_messages"] == 0, (end, st)
