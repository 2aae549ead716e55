"""Scoring off the event loop, within a deadline, with a short fail-fast window after the online store fails.

Why: scoring reads the online store with a blocking client.  On the event loop, one read stuck on a blackholed
Redis would stall every other request and the liveness probe with it, and the kubelet would restart a server
that only needs to wait for its store.  Here the blocking work runs in a few threads, each request waits at most
``serving.scoring_timeout_s`` for it (then a 503), and after the store fails it is left alone for
``serving.feature_store_retry_s``: requests meanwhile get their 503 at once instead of piling up behind a dead
socket.  The first request after the window tries the store again, so the server recovers without a restart.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from mlplatform.serving.errors import FeatureStoreUnavailableError, ScoringTimeoutError, ServingError

T = TypeVar("T")

WAITING_PER_THREAD = 16
"""Requests that may wait per scoring thread; beyond that a server is overloaded, and a 503 now beats one later."""


class StoreHealth:
    """When the online store last failed: while its fail-fast window lasts, reads are not even tried."""

    def __init__(self, retry_after_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.retry_after_s = retry_after_s
        self._clock = clock
        self._failed_until = 0.0

    def check(self) -> None:
        """Raise the 503 at once while the window of the last failure lasts."""
        if self._clock() < self._failed_until:
            raise FeatureStoreUnavailableError(
                "the online feature store failed moments ago; retry later (the model server's log has the cause)"
            )

    def failed(self) -> None:
        self._failed_until = self._clock() + self.retry_after_s


class OffLoop:
    """Runs a blocking call in a small thread pool and waits for it at most ``deadline_s``."""

    def __init__(
        self,
        threads: int,
        deadline_s: float,
        health: StoreHealth,
        *,
        on_timeout: Callable[[], None],
        on_refused: Callable[[ServingError], None],
    ) -> None:
        """``on_timeout`` runs when a call outlives the deadline (the caller knows whether the store is to blame);
        ``on_refused`` counts the 503s given here (those raised inside a call are the call's to count)."""
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="scoring")
        self._deadline_s = deadline_s
        self._health = health
        self._on_timeout = on_timeout
        self._on_refused = on_refused
        self._limit = threads * WAITING_PER_THREAD
        self._waiting = 0

    async def run(self, call: Callable[[], T]) -> T:
        """``call()``'s result; a 503 when the store is in its fail-fast window, too many requests wait, or the
        deadline passes (the call goes on in its thread; its answer is dropped)."""
        try:
            self._health.check()
            if self._waiting >= self._limit:
                raise FeatureStoreUnavailableError(f"{self._waiting} requests are waiting for scoring; retry later")
        except ServingError as error:
            self._on_refused(error)
            raise
        self._waiting += 1
        try:
            # In the request's context: its log context (request id, model, version) is completed by the call.
            context = contextvars.copy_context()
            future = asyncio.get_running_loop().run_in_executor(self._pool, context.run, call)
            return await asyncio.wait_for(future, self._deadline_s)
        except TimeoutError:
            self._on_timeout()
            late = ScoringTimeoutError(
                f"scoring took longer than {self._deadline_s:g}s (serving.scoring_timeout_s); retry later"
            )
            self._on_refused(late)
            raise late from None
        finally:
            self._waiting -= 1

    def close(self) -> None:
        """Let running calls finish in their threads; start no new ones."""
        self._pool.shutdown(wait=False, cancel_futures=True)
