"""Waiting on a condition instead of sleeping: a test that sleeps to let something happen is slow when the sleep is
long and flaky when it is short; polling the condition with a bound is neither."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import uvicorn

T = TypeVar("T")


def wait_for(condition: Callable[[], T | None], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll ``condition`` until it returns a truthy value, and return that value; fail the test naming ``what``
    once ``timeout`` seconds have passed (the condition is always tried at least once, and once more at the end)."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(min(interval, max(deadline - time.monotonic(), 0.0)))


def wait_started(server: uvicorn.Server, thread: threading.Thread, timeout: float, what: str) -> None:
    """Wait until ``server`` (running ``server.run`` in ``thread``) accepts connections; fail if it dies first."""
    wait_for(lambda: server.started or not thread.is_alive(), timeout, f"{what} to start")
    assert server.started, f"{what} exited before it started"


@contextmanager
def serving_in_thread(app: Any, what: str = "uvicorn") -> Iterator[str]:
    """``app`` served by a real uvicorn server on a free loopback port in a thread of the test process; yields its
    base URL and stops the server afterwards."""
    from tests.support.environment import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_started(server, thread, 15, what)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
