"""The fault rig (CPython only): mosquitto <- fault proxy <- board, a collector on the
broker, and the verdict that proves no value was lost (tools/soak.py describes the whole).
"""

import sys

from tools.soak_procs import BoardProcess, Collector, Mosquitto, _root


class Rig:
    """mosquitto <- fault proxy <- board; collector on the broker. Use as a context."""

    def __init__(self, workdir, interp="unix", **board_cfg):
        self.workdir = workdir
        self.interp = interp
        self.board_cfg = board_cfg
        self.broker = None
        self.proxy = None
        self.collector = None
        self.board = None
        self.brokers = []
        self.topic = "soak/values"

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc):
        self.close()

    def start(self):
        sys.path.insert(0, str(_root()))
        from tools.faultproxy import ProxyThread

        self.broker = Mosquitto(self.workdir).start()
        self.brokers.append(self.broker)
        self.proxy = ProxyThread("127.0.0.1", self.broker.port)
        self.proxy.start()
        self.collector = Collector(self.broker.port, self.topic).start()
        return self

    def start_board(self, **over):
        cfg = {
            "host": "127.0.0.1",
            "port": self.proxy.port,
            "client_id": "soak-board",
            "topic": self.topic,
            "cmd_topic": "soak/cmd",
            "store_dir": str(self.workdir / "store"),
            "keepalive": 2,
            "period_ms": 20,
            "count": 0,
            "backoff_min_ms": 200,
            "backoff_max_ms": 2000,
            "connect_timeout_ms": 3000,
            "sync_timeout_ms": 5000,
            "status_ms": 200,
            "run_s": 300,
        }
        cfg.update(self.board_cfg)
        cfg.update(over)
        self.board = BoardProcess(self.workdir, cfg, self.interp).start()
        return self.board

    def restart_broker(self, down_s=1.0):
        """Kill the broker (SIGKILL); start a new one after down_s; reconnects are refused
        until the collector is subscribed to it (so no value is published to nobody)."""
        import time

        self.proxy.refuse()
        self.broker.kill()
        self.proxy.drop()
        self.collector.stop()
        time.sleep(down_s)
        self.broker = Mosquitto(self.workdir).start()
        self.brokers.append(self.broker)
        old = self.collector
        self.collector = Collector(self.broker.port, self.topic).start()
        self.collector.values = old.snapshot()
        self.proxy.set_target("127.0.0.1", self.broker.port)
        self.proxy.resume()

    def wait_delivered(self, n, timeout):
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(set(self.collector.snapshot())) >= n:
                return True
            time.sleep(0.05)
        return False

    def verdict(self, first=1, last=None, wait_s=10):
        """Values first..last (the board's last produced by default) against arrivals.

        The broker acknowledges a PUBACK before its copy reaches the collector: missing
        values are waited for up to wait_s before they count as lost."""
        import time

        if last is None:
            last = self.board.end["last"] if self.board.end else self.board.status["last"]
        want = set(range(first, (last or 0) + 1))
        deadline = time.monotonic() + wait_s
        while True:
            got = self.collector.snapshot()
            seen = set(got)
            if want <= seen or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        lost = sorted(want - seen)
        return {
            "produced": len(want),
            "delivered": len(want & seen),
            "lost": len(lost),
            "lost_values": lost[:20],
            "duplicates": len(got) - len(seen),
            "unexpected": sorted(seen - want)[:20],
        }

    def close(self):
        for step in (
            lambda: self.board and self.board.stop(),
            lambda: self.collector and self.collector.stop(),
            lambda: self.proxy and self.proxy.stop(),
        ):
            try:
                step()
            except Exception:
                pass
        for b in self.brokers:
            try:
                b.stop()
            except Exception:
                pass
