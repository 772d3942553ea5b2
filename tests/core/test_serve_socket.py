"""The listening socket several server processes share (`sim/serve.py`): connections taken
from it must have Nagle's algorithm off, as uvicorn's own sockets do. Otherwise an answer
sent as a head and a body waits for the client's delayed ACK of the head (40 ms on Linux):
with `workers > 1` every call was answered 40 ms late."""

from __future__ import annotations

import asyncio
import socket

from safecity.sim.serve import shared_port_socket


def test_connections_from_the_shared_port_socket_send_at_once() -> None:
    listener = shared_port_socket("127.0.0.1", 0)
    port = listener.getsockname()[1]
    got: list[int] = []

    async def main() -> None:
        async def handle(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            got.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        # As uvicorn serves a socket it is given (`Server.run(sockets=[...])`).
        server = await asyncio.start_server(handle, sock=listener)
        async with server:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            for _ in range(100):
                if got:
                    break
                await asyncio.sleep(0.01)
            writer.close()

    asyncio.run(main())
    assert got and got[0] != 0, "Nagle's algorithm is on for the server's connections"
