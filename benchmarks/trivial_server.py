"""A trivial HTTP endpoint: every request is answered ``200 {}`` at once, on uvloop, with no framework.

Usage: python benchmarks/trivial_server.py --port 8399

What the serving benchmark checks its load generator against: a server that costs as little as an HTTP server
can per request, so that the check's limit is the generator's, not the endpoint's.  (A framework's trivial
route on one core costs about as much as the generator itself, and the check would measure both.)
"""

from __future__ import annotations

import argparse
import asyncio
import re
from typing import cast

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)


class Trivial(asyncio.Protocol):
    """Answers each complete request (head and ``Content-Length`` bytes of body) on its connection in turn."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        while (head_end := self.buffer.find(b"\r\n\r\n")) >= 0:
            length = _CONTENT_LENGTH.search(bytes(self.buffer[:head_end]))
            end = head_end + 4 + (int(length.group(1)) if length else 0)
            if len(self.buffer) < end:
                return
            del self.buffer[:end]
            self.transport.write(ANSWER)


async def serve(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Trivial, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    import uvloop

    uvloop.run(serve(args.port))


if __name__ == "__main__":
    main()
