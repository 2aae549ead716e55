"""Open-loop HTTP load generator: sends requests on a fixed schedule, whatever the server's speed.

A closed loop (send, wait, send) slows down with the server and hides its tail; here request ``i`` is due at
``start + i / rate`` and its latency is measured from that due time, so queueing in the server (or in this
client falling behind) shows up in the percentiles.  Run as a separate process, ideally on its own core.

Usage: python benchmarks/loadgen.py URL BODIES.json --rate 200 --duration 20 [--also URL2 BODIES2.json]
Prints one JSON object: sent, ok, failed, statuses, throughput and latency percentiles in milliseconds; with
``--also``, a JSON list of one such object per server, in the order given.

With ``--also`` the schedule is shared out in turns of ``--slice`` seconds (``run_interleaved``): each server gets
the rate during its turns and idles during the others'.  Two servers measured so are compared in the same seconds
of the same machine, which on a shared virtual machine drifts by more than the difference being measured between
two runs a minute apart (docs/performance.md).

Why HTTP/1.1 by hand over asyncio protocols rather than an HTTP client library: the generator must sustain twice
the highest rate any server reaches (about 8,000 requests/s here) on one core.  aiohttp's client spent about
0.1 ms of CPU per request, so it, not the servers, set the limit near 8,000/s; here a request is a prepared byte
string written on a kept-alive connection, and an answer is its status line and ``Content-Length`` (or a chunked
body's last chunk).  Up to ``CONNECTIONS`` requests are in flight, each on its own connection, as with a client
library's pool; a request that finds them all busy waits for the first one free, in its due order.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from collections import Counter, deque
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import numpy as np

CONNECTIONS = 128
"""Requests in flight at most (aiohttp's default pool size, which the generator used before)."""
SLICE_S = 0.5
"""With several servers, the length of each one's turn: short against the machine's drift, long against the few
milliseconds a server idle during the others' turns may take to wake."""
TIMEOUT_S = 10.0
"""An answer later than this after its due time counts as a failure (``TimeoutError``), as a client's would."""
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:[ \t]*chunked", re.IGNORECASE)


def response_end(buffer: bytearray) -> tuple[int, int] | None:
    """``(status, bytes the answer takes)`` of the HTTP/1.1 answer at the start of ``buffer``, or ``None`` while it
    is incomplete."""
    head_end = buffer.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    head = bytes(buffer[:head_end])
    status = int(head[9:12])
    body_start = head_end + 4
    length = _CONTENT_LENGTH.search(head)
    if length is not None:
        end = body_start + int(length.group(1))
        return (status, end) if len(buffer) >= end else None
    if _CHUNKED.search(head):
        last = buffer.find(b"0\r\n\r\n", body_start)
        return (status, last + 5) if last >= 0 else None
    return status, body_start  # no body (204, 304)


class Results:
    """Latencies of the answered requests and the count of every outcome."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.latencies: list[float] = []
        self.statuses: Counter[str] = Counter()
        self.done = asyncio.Event()
        if total == 0:
            self.done.set()

    def answered(self, status: int, due: float) -> None:
        late = time.perf_counter() - due
        if late > TIMEOUT_S:
            self.failed("TimeoutError")
            return
        self.statuses[str(status)] += 1
        if status == 200:
            self.latencies.append(late * 1000.0)
        self._count()

    def failed(self, reason: str) -> None:
        self.statuses[reason] += 1
        self._count()

    def _count(self) -> None:
        if sum(self.statuses.values()) >= self.total:
            self.done.set()


class Connection(asyncio.Protocol):
    """One kept-alive connection carrying one request at a time."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.buffer = bytearray()
        self.due: float | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def send(self, request: bytes, due: float) -> None:
        assert self.transport is not None
        self.due = due
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        answer = response_end(self.buffer)
        if answer is None or self.due is None:
            return
        status, size = answer
        del self.buffer[:size]
        due, self.due = self.due, None
        self.pool.finished(self, status, due)

    def connection_lost(self, exc: Exception | None) -> None:
        self.pool.lost(self)


class Pool:
    """Connections to one server: an idle one takes a due request at once; none idle and fewer than
    ``CONNECTIONS`` open, a new one is opened for it; else it waits for the first one free."""

    def __init__(self, host: str, port: int, results: Results) -> None:
        self.host = host
        self.port = port
        self.results = results
        self.idle: list[Connection] = []
        self.open = 0
        self.waiting: deque[tuple[bytes, float]] = deque()
        self.tasks: set[asyncio.Task[None]] = set()

    def submit(self, request: bytes, due: float) -> None:
        if self.idle:
            self.idle.pop().send(request, due)
        elif self.open < CONNECTIONS:
            self._connect(request, due)
        else:
            self.waiting.append((request, due))

    def finished(self, connection: Connection, status: int, due: float) -> None:
        self.results.answered(status, due)
        if self.waiting:
            connection.send(*self.waiting.popleft())
        else:
            self.idle.append(connection)

    def lost(self, connection: Connection) -> None:
        self.open -= 1
        if connection in self.idle:
            self.idle.remove(connection)
        if connection.due is not None:
            self.results.failed("ServerDisconnectedError")
        if self.waiting:
            self._connect(*self.waiting.popleft())

    def _connect(self, request: bytes, due: float) -> None:
        self.open += 1
        task = asyncio.get_running_loop().create_task(self._open(request, due))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _open(self, request: bytes, due: float) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, connection = await loop.create_connection(lambda: Connection(self), self.host, self.port)
        except OSError as error:
            self.open -= 1
            self.results.failed(type(error).__name__)
            return
        connection.send(request, due)

    def close(self) -> None:
        for connection in self.idle:
            if connection.transport is not None:
                connection.transport.close()


def http_requests(url: str, bodies: list[Any]) -> tuple[str, int, list[bytes]]:
    """Host, port and each body's whole ``POST`` request, prepared once."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    requests = []
    for body in bodies:
        payload = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        )
        requests.append(head.encode() + payload)
    return host, port, requests


async def run(url: str, bodies: list[Any], rate: float, duration: float) -> dict[str, Any]:
    return (await run_interleaved([(url, bodies)], rate, duration))[0]


async def run_interleaved(
    targets: list[tuple[str, list[Any]]], rate: float, duration: float, slice_s: float = SLICE_S
) -> list[dict[str, Any]]:
    """One fixed schedule at ``rate`` for ``duration``, shared out among ``targets`` in turns of ``slice_s``: request
    ``i`` is due at ``start + i / rate`` and goes to target ``(i // per_turn) % len(targets)``.  Each target's
    result covers its own requests; its ``seconds`` is its share of the run."""
    total = int(rate * duration)
    per_turn = max(1, round(rate * slice_s))
    owner = [(index // per_turn) % len(targets) for index in range(total)]
    pools, prepared, results = [], [], []
    for position, (url, bodies) in enumerate(targets):
        host, port, requests = http_requests(url, bodies)
        results.append(Results(owner.count(position)))
        pools.append(Pool(host, port, results[-1]))
        prepared.append(requests)
    sent = [0] * len(targets)
    start = time.perf_counter() + 0.2
    index = 0
    while index < total:
        now = time.perf_counter()
        while index < total and start + index / rate <= now:
            target = owner[index]
            pools[target].submit(prepared[target][sent[target] % len(prepared[target])], start + index / rate)
            sent[target] += 1
            index += 1
        if index < total:
            await asyncio.sleep(start + index / rate - time.perf_counter())
    try:
        await asyncio.wait_for(asyncio.gather(*(result.done.wait() for result in results)), TIMEOUT_S)
    except TimeoutError:
        for result in results:
            result.statuses["TimeoutError"] += result.total - sum(result.statuses.values())
    elapsed = time.perf_counter() - start
    for pool in pools:
        pool.close()
    return [summary(result, elapsed * result.total / max(total, 1)) for result in results]


def summary(results: Results, seconds: float) -> dict[str, Any]:
    latencies = results.latencies
    values = np.array(latencies) if latencies else np.array([float("nan")])
    return {
        "sent": results.total,
        "ok": len(latencies),
        "failed": results.total - len(latencies),
        "statuses": dict(results.statuses),
        "seconds": seconds,
        "throughput_rps": len(latencies) / seconds,
        "p50_ms": float(np.percentile(values, 50)),
        "p95_ms": float(np.percentile(values, 95)),
        "p99_ms": float(np.percentile(values, 99)),
        "max_ms": float(values.max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("bodies", type=Path)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--also", nargs=2, action="append", default=[], metavar=("URL", "BODIES"))
    parser.add_argument("--slice", type=float, default=SLICE_S, help="seconds of each server's turn with --also")
    args = parser.parse_args()
    targets = [(url, json.loads(Path(path).read_text())) for url, path in [(args.url, args.bodies), *args.also]]
    import uvloop

    # uvloop's event loop: the stock one's scheduling cost made this generator, not the servers, the limit
    # above about 1,000 requests/s on one core.
    results = uvloop.run(run_interleaved(targets, args.rate, args.duration, args.slice))
    print(json.dumps(results if args.also else results[0]))


if __name__ == "__main__":
    main()
