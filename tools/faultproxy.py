"""A TCP proxy on loopback that injects network faults, for tests (CPython, asyncio).

    proxy = FaultProxy("127.0.0.1", broker_port)
    port = await proxy.start()          # clients connect to 127.0.0.1:port
    proxy.delay(200)                    # every chunk, both ways, waits 200 ms more
    proxy.drop()                        # abort every open connection (new ones work)
    proxy.blackhole()                   # accept and swallow everything, reply nothing
    proxy.refuse()                      # stop listening: connects get ECONNREFUSED
    proxy.cut_after(7)                  # abort each new upstream stream after 7 more bytes
    proxy.resume()                      # clear every fault
    await proxy.stop()

ProxyThread runs the same proxy in a background thread with blocking methods, for tests
that drive subprocesses (the MicroPython unix port). `python -m tools.faultproxy` runs it
standalone with a line-based control socket (`delay 200`, `drop`, `blackhole`, `refuse`,
`resume`, `stats`, `target HOST PORT`), answered with `ok ...` or `error ...`.

A black-holed connection stays swallowed after resume (its bytes are gone, so the MQTT
stream could not continue anyway): the client has to notice through its keepalive.
"""

import argparse
import asyncio
import contextlib
import socket
import threading

CHUNK = 4096
UPSTREAM_CONNECT_TIMEOUT_S = 5


class _Conn:
    def __init__(self, proxy, cw, uw, blackholed):
        self.proxy = proxy
        self.cw = cw  # writer to the client
        self.uw = uw  # writer to the upstream (None while black-holed from birth)
        self.blackholed = blackholed
        self.cut_left = proxy._cut

    def abort(self):
        for w in (self.cw, self.uw):
            if w is not None:
                with contextlib.suppress(Exception):
                    w.transport.abort()


class FaultProxy:
    def __init__(self, target_host, target_port, host="127.0.0.1", port=0):
        self.target = (target_host, target_port)
        self.host = host
        self.port = port
        self._server = None
        self._conns = set()
        self._tasks = set()
        self._delay_s = 0.0
        self._blackhole = False
        self._refusing = False
        self._cut = None
        self.stats = {
            "accepted": 0,
            "upstream_failures": 0,
            "dropped": 0,
            "bytes_up": 0,
            "bytes_down": 0,
            "swallowed": 0,
        }

    # ---- lifecycle ---------------------------------------------------------------------

    async def start(self):
        await self._listen()
        return self.port

    async def _listen(self):
        self._server = await asyncio.start_server(
            self._handle, self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _unlisten(self):
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    async def stop(self):
        await self._unlisten()
        self.drop()
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2)

    # ---- faults ------------------------------------------------------------------------

    def delay(self, ms):
        """Hold every chunk (both directions) ms milliseconds longer; order is kept."""
        self._delay_s = max(0, ms) / 1000.0

    def drop(self):
        """Abort every open connection, both sides; the listener keeps accepting."""
        n = len(self._conns)
        for c in list(self._conns):
            c.abort()
        self._conns.clear()
        self.stats["dropped"] += n
        return n

    def blackhole(self, on=True):
        """Swallow all traffic on open and new connections; nothing is answered."""
        self._blackhole = on
        if on:
            for c in self._conns:
                c.blackholed = True

    def cut_after(self, nbytes):
        """Connections opened from now on are aborted after nbytes client->server bytes
        (the partial chunk is forwarded first: the broker sees a torn packet). None: off."""
        self._cut = nbytes

    async def refuse(self, on=True):
        """Close the listening socket (connects are refused) or open it again."""
        self._refusing = on
        if on:
            await self._unlisten()
        elif self._server is None:
            await self._listen()

    async def resume(self):
        """Clear every fault: no delay, no black hole, no cut, listening again."""
        self._delay_s = 0.0
        self._blackhole = False
        self._cut = None
        await self.refuse(False)

    def set_target(self, host, port):
        """Where new connections go (e.g. a broker restarted on another port)."""
        self.target = (host, port)

    @property
    def active(self):
        return len(self._conns)

    # ---- data path ---------------------------------------------------------------------

    def _spawn(self, coro):
        t = asyncio.ensure_future(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
        return t

    async def _handle(self, cr, cw):
        self._tasks.add(asyncio.current_task())
        self.stats["accepted"] += 1
        conn = None
        try:
            if self._blackhole:
                conn = _Conn(self, cw, None, True)
                self._conns.add(conn)
                await self._swallow(cr)
                return
            try:
                ur, uw = await asyncio.wait_for(
                    asyncio.open_connection(*self.target), UPSTREAM_CONNECT_TIMEOUT_S
                )
            except (OSError, asyncio.TimeoutError):
                self.stats["upstream_failures"] += 1
                cw.transport.abort()
                return
            conn = _Conn(self, cw, uw, False)
            self._conns.add(conn)
            up = self._spawn(self._pump(conn, cr, uw, True))
            down = self._spawn(self._pump(conn, ur, cw, False))
            await asyncio.wait([up, down], return_when=asyncio.FIRST_COMPLETED)
            # One side ended: give the other a moment to flush, then close both.
            await asyncio.wait([up, down], timeout=1)
            up.cancel()
            down.cancel()
        except asyncio.CancelledError:
            pass
        finally:
            if conn is not None:
                self._conns.discard(conn)
                conn.abort()
            else:
                with contextlib.suppress(Exception):
                    cw.transport.abort()
            self._tasks.discard(asyncio.current_task())

    async def _swallow(self, reader):
        while True:
            data = await reader.read(CHUNK)
            if not data:
                return
            self.stats["swallowed"] += len(data)

    async def _pump(self, conn, reader, writer, upstream):
        try:
            while True:
                data = await reader.read(CHUNK)
                if not data:
                    with contextlib.suppress(Exception):
                        if writer.can_write_eof():
                            writer.write_eof()
                    return
                if conn.blackholed:
                    self.stats["swallowed"] += len(data)
                    continue
                if self._delay_s:
                    await asyncio.sleep(self._delay_s)
                    if conn.blackholed:
                        self.stats["swallowed"] += len(data)
                        continue
                if upstream and conn.cut_left is not None:
                    if len(data) >= conn.cut_left:
                        writer.write(data[: conn.cut_left])
                        self.stats["bytes_up"] += conn.cut_left
                        with contextlib.suppress(Exception):
                            await asyncio.wait_for(writer.drain(), 1)
                        conn.abort()
                        self.stats["dropped"] += 1
                        return
                    conn.cut_left -= len(data)
                writer.write(data)
                self.stats["bytes_up" if upstream else "bytes_down"] += len(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            return


class ProxyThread:
    """A FaultProxy on its own event loop in a daemon thread, with blocking methods."""

    def __init__(self, target_host, target_port, host="127.0.0.1", port=0):
        self.proxy = FaultProxy(target_host, target_port, host, port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = None

    def _call(self, coro, timeout=10):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _sync(self, fn, *args):
        async def call():
            return fn(*args)

        return self._call(call())

    def start(self):
        self._thread.start()
        self.port = self._call(self.proxy.start())
        return self.port

    def stop(self):
        if not self._thread.is_alive():
            return
        try:
            self._call(self.proxy.stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            if not self._thread.is_alive():
                self._loop.close()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def delay(self, ms):
        self._sync(self.proxy.delay, ms)

    def drop(self):
        return self._sync(self.proxy.drop)

    def blackhole(self, on=True):
        self._sync(self.proxy.blackhole, on)

    def cut_after(self, nbytes):
        self._sync(self.proxy.cut_after, nbytes)

    def refuse(self, on=True):
        self._call(self.proxy.refuse(on))

    def resume(self):
        self._call(self.proxy.resume())

    def set_target(self, host, port):
        self._sync(self.proxy.set_target, host, port)

    @property
    def active(self):
        return self._sync(lambda: self.proxy.active)

    @property
    def stats(self):
        return self._sync(lambda: dict(self.proxy.stats))


# ---- standalone tool with a control socket ------------------------------------------------


async def _control(proxy, reader, writer):
    try:
        while True:
            line = await reader.readline()
            if not line:
                return
            words = line.decode(errors="replace").split()
            if not words:
                continue
            cmd, args = words[0].lower(), words[1:]
            try:
                if cmd == "delay":
                    proxy.delay(int(args[0]))
                    reply = "ok delay %s" % args[0]
                elif cmd == "drop":
                    reply = "ok dropped %d" % proxy.drop()
                elif cmd == "blackhole":
                    proxy.blackhole(not args or args[0] != "off")
                    reply = "ok blackhole"
                elif cmd == "refuse":
                    await proxy.refuse(not args or args[0] != "off")
                    reply = "ok refuse"
                elif cmd == "cut":
                    proxy.cut_after(int(args[0]) if args and args[0] != "off" else None)
                    reply = "ok cut"
                elif cmd == "resume":
                    await proxy.resume()
                    reply = "ok resume"
                elif cmd == "target":
                    proxy.set_target(args[0], int(args[1]))
                    reply = "ok target"
                elif cmd == "stats":
                    reply = "ok " + " ".join("%s=%s" % kv for kv in sorted(proxy.stats.items()))
                else:
                    reply = "error unknown command %r" % cmd
            except (IndexError, ValueError) as exc:
                reply = "error %s" % exc
            writer.write((reply + "\n").encode())
            await writer.drain()
    finally:
        writer.close()


async def _main(args):
    host, _, port = args.target.rpartition(":")
    proxy = FaultProxy(host or "127.0.0.1", int(port), args.host, args.listen)
    await proxy.start()
    ctl = await asyncio.start_server(
        lambda r, w: _control(proxy, r, w), args.host, args.control, reuse_address=True
    )
    print(
        "faultproxy %s:%d -> %s, control %s:%d"
        % (args.host, proxy.port, args.target, args.host, ctl.sockets[0].getsockname()[1]),
        flush=True,
    )
    try:
        await asyncio.Event().wait()
    finally:
        ctl.close()
        await proxy.stop()


def main(argv=None):
    ap = argparse.ArgumentParser(description="TCP fault-injection proxy for tests")
    ap.add_argument("--target", required=True, help="HOST:PORT to forward to")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--listen", type=int, default=0, help="proxy port (0: any free)")
    ap.add_argument("--control", type=int, default=0, help="control port (0: any free)")
    args = ap.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(args))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    main()
