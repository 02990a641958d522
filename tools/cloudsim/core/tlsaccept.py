"""TLS servers whose refused handshakes are reported, not silently dropped (core/broker.py).

asyncio.start_server(ssl=ctx) closes a connection whose TLS handshake failed without telling
the application, so a device refused for its client certificate (another CA, expired) left
no trace in the emulator's log. Here the handshake is done with loop.start_tls on a
connection held paused until then (a StreamWriter.start_tls after start_server would lose a
ClientHello already read into the stream), and a failure calls refused(peer, reason).
"""

import asyncio

HANDSHAKE_TIMEOUT_S = 10


async def start_server(accepted, refused, host, port, ctx):
    """Like asyncio.start_server(accepted, host, port, ssl=ctx); a failed handshake calls
    refused((addr, port), reason) instead. Returns the asyncio Server."""
    loop = asyncio.get_running_loop()
    tasks = set()

    async def handshake(transport):
        peer = (transport.get_extra_info("peername") or ("?", 0))[:2]
        reader = asyncio.StreamReader(loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        try:
            tls = await loop.start_tls(
                transport,
                protocol,
                ctx,
                server_side=True,
                ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S,
            )
        except Exception as exc:
            transport.abort()
            refused(peer, getattr(exc, "verify_message", None) or str(exc) or repr(exc))
            return
        protocol.connection_made(tls)
        await accepted(reader, asyncio.StreamWriter(tls, protocol, reader, loop))

    class Held(asyncio.Protocol):
        def connection_made(self, transport):
            transport.pause_reading()  # the ClientHello is for the TLS layer
            task = loop.create_task(handshake(transport))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    return await loop.create_server(Held, host, port, reuse_address=True)
