"""The serving benchmark's instruments: the load generator's HTTP/1.1 framing, and a real run against the trivial
endpoint, both in one process (``benchmarks/loadgen.py``, ``benchmarks/trivial_server.py``)."""

from __future__ import annotations

import asyncio
import time
from functools import partial

from benchmarks.loadgen import response_end, run, run_interleaved
from benchmarks.trivial_server import Trivial


def test_an_answer_ends_where_its_content_length_or_last_chunk_says() -> None:
    whole = bytearray(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1 422 ...")
    assert response_end(whole) == (200, whole.index(b"}") + 1)
    assert response_end(bytearray(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n{}")) is None  # body still coming
    assert response_end(bytearray(b"HTTP/1.1 503 Service Unavailable\r\nContent-Le")) is None  # head still coming
    chunked = bytearray(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
    assert response_end(chunked) == (200, len(chunked))
    assert response_end(bytearray(b"HTTP/1.1 204 No Content\r\nServer: x\r\n\r\n")) == (204, 38)


def test_every_request_is_sent_on_schedule_and_answered() -> None:
    async def against_trivial_endpoint() -> dict[str, object]:
        server = await asyncio.get_running_loop().create_server(Trivial, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            return await run(f"http://127.0.0.1:{port}/noop", [{"noop": [0]}, {"noop": [1, 2]}], 400.0, 1.0)

    result = asyncio.run(against_trivial_endpoint())
    assert result["sent"] == 400 and result["ok"] == 400 and result["failed"] == 0
    assert result["statuses"] == {"200": 400}
    assert 0.95 <= float(str(result["seconds"])) < 2.0  # a fixed schedule: the run lasts its duration


class Stamped(Trivial):
    """The trivial endpoint, noting when each request reached it in ``arrivals``."""

    def __init__(self, arrivals: list[float]) -> None:
        super().__init__()
        self.arrivals = arrivals

    def data_received(self, data: bytes) -> None:
        self.arrivals.append(time.perf_counter())
        super().data_received(data)


def test_two_servers_share_one_schedule_in_turns() -> None:
    """``--also``: each server gets the rate during its own half-second turns and nothing during the other's."""
    arrivals: tuple[list[float], list[float]] = ([], [])

    async def against_two_endpoints() -> list[dict[str, object]]:
        loop = asyncio.get_running_loop()
        servers = [await loop.create_server(partial(Stamped, seen), "127.0.0.1", 0) for seen in arrivals]
        urls = [f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/noop" for server in servers]
        try:
            return await run_interleaved([(url, [{"noop": [0]}]) for url in urls], 400.0, 2.0, slice_s=0.5)
        finally:
            for server in servers:
                server.close()

    first, second = asyncio.run(against_two_endpoints())
    assert (first["sent"], first["ok"], second["sent"], second["ok"]) == (400, 400, 400, 400)
    assert 0.9 <= float(str(first["seconds"])) < 1.5  # its share of the two seconds
    start = min(arrivals[0])
    turns = [[int((moment - start) / 0.5) % 2 for moment in seen] for seen in arrivals]
    # Turns alternate, the first server's first (a request of a turn's last moments may arrive just after it).
    assert turns[0].count(1) <= 4 and turns[1].count(0) <= 4 and len(turns[1]) >= 380
