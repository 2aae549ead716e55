"""Open-loop HTTP load generator: sends requests on a fixed schedule, whatever the server's speed.

A closed loop (send, wait, send) slows down with the server and hides its tail; here request ``i`` is due at
``start + i / rate`` and its latency is measured from that due time, so queueing in the server (or in this
client falling behind) shows up in the percentiles.  Run as a separate process, ideally on its own core.

Usage: python benchmarks/loadgen.py URL BODIES.json --rate 200 --duration 20 [--entities-per-request 1]
Prints one JSON object: sent, ok, failed, statuses, throughput and latency percentiles in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np


async def run(url: str, bodies: list[Any], rate: float, duration: float) -> dict[str, Any]:
    """aiohttp, not httpx: at a few hundred requests/s httpx's async pool costs more CPU than the servers measured."""
    import aiohttp

    total = int(rate * duration)
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    payloads = [json.dumps(body).encode() for body in bodies]
    headers = {"content-type": "application/json"}
    connector = aiohttp.TCPConnector(limit=128)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.perf_counter() + 0.2

        async def one(index: int, due: float) -> None:
            try:
                async with session.post(url, data=payloads[index % len(payloads)], headers=headers) as response:
                    await response.read()
                    statuses[str(response.status)] += 1
                    if response.status == 200:
                        latencies.append((time.perf_counter() - due) * 1000.0)
            except (aiohttp.ClientError, TimeoutError) as error:
                statuses[type(error).__name__] += 1

        tasks = []
        for index in range(total):
            due = start + index / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(index, due)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    values = np.array(latencies) if latencies else np.array([float("nan")])
    return {
        "sent": total,
        "ok": len(latencies),
        "failed": total - len(latencies),
        "statuses": dict(statuses),
        "seconds": elapsed,
        "throughput_rps": len(latencies) / elapsed,
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
    args = parser.parse_args()
    bodies = json.loads(args.bodies.read_text())
    import uvloop

    # uvloop's event loop: the stock one's scheduling cost made this generator, not the servers, the limit
    # above about 1,000 requests/s on one core (the serving benchmark checks it against a trivial endpoint).
    print(json.dumps(uvloop.run(run(args.url, bodies, args.rate, args.duration))))


if __name__ == "__main__":
    main()
