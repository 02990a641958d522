"""The faults a soak run injects into a Rig, one by one (CPython only)."""

FAULTS = (
    "drop",
    "cut",
    "blackhole",
    "refuse",
    "delay",
    "wifi",
    "broker",
    "malformed",
    "clock",
)


def inject(rig, fault, rnd, log):
    """One fault, chosen by name; returns when it is over (the board recovers after)."""
    import time

    b = rig.board
    ka = rig.board.cfg["keepalive"]
    if fault == "drop":
        log("drop every connection")
        rig.proxy.drop()
    elif fault == "cut":
        n = rnd.randint(20, 200)
        log("cut the next connection after %d bytes" % n)
        rig.proxy.cut_after(n)
        rig.proxy.drop()
        time.sleep(2)
        rig.proxy.cut_after(None)
    elif fault == "blackhole":
        s = ka * 1.5 + rnd.uniform(1, 4)
        log("black hole for %.1f s (keepalive %d s)" % (s, ka))
        rig.proxy.blackhole()
        time.sleep(s)
        rig.proxy.resume()
    elif fault == "refuse":
        s = rnd.uniform(1, 6)
        log("refuse connections for %.1f s" % s)
        rig.proxy.refuse()
        rig.proxy.drop()
        time.sleep(s)
        rig.proxy.resume()
    elif fault == "delay":
        ms = rnd.randint(50, 400)
        log("delay %d ms for 4 s" % ms)
        rig.proxy.delay(ms)
        time.sleep(4)
        rig.proxy.delay(0)
    elif fault == "wifi":
        s = rnd.uniform(0.5, 4)
        log("WiFi down for %.1f s" % s)
        b.wifi(False)
        time.sleep(s)
        b.wifi(True)
    elif fault == "broker":
        s = rnd.uniform(0.5, 3)
        log("broker killed, back after %.1f s" % s)
        rig.restart_broker(s)
    elif fault == "malformed":
        log("malformed and oversize messages to the board")
        for payload in (b"\xff\xff", b"\x9f", b"", b"\x1b" + b"\x00" * 3, b"x" * 5000):
            rig.collector.publish(rig.board.cfg["cmd_topic"], payload)
    elif fault == "clock":
        d = rnd.choice((-86400 * 30, -3600, 3600, 86400 * 365))
        log("clock jumps %+d s" % d)
        b.command("clock", d)
