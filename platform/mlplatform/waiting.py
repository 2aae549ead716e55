"""Waiting for something another process does: one bounded polling helper instead of a deadline loop per caller.

Health checks, DAG parsing, Airflow runs, Kubernetes rollouts and the closed loop's steps all wait the same way:
ask, and if the answer is not there yet, pause and ask again until a deadline.  Written once here, every wait is
bounded, never sleeps past its deadline, asks one last time at the deadline, and fails with an error that names
what was awaited and the last state seen.  Standard library only: it sits at the bottom with ``config``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


class WaitTimeoutError(TimeoutError):
    """``what`` did not happen within ``timeout`` seconds; ``detail`` describes the last state seen (may be empty).

    Callers with their own error type (a health check, an Airflow run, a loop step) catch this and raise theirs
    with ``detail``, so their messages stay as specific as the caller can make them.
    """

    def __init__(self, what: str, timeout: float, detail: str = "") -> None:
        message = f"timed out after {timeout:g}s waiting for {what}"
        super().__init__(f"{message}: {detail}" if detail else message)
        self.what = what
        self.timeout = timeout
        self.detail = detail


def wait_until(
    check: Callable[[], T | None],
    *,
    timeout: float,
    interval: float,
    what: str,
    on_timeout: Callable[[], str] | None = None,
    on_wait: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``check`` until it returns a truthy value and return that value.

    ``check`` may raise to stop waiting early (a process that died will never become healthy).  Between calls,
    ``on_wait`` runs (progress output) and the wait pauses ``interval`` seconds, or less when the deadline is
    nearer; ``check`` is called once more at the deadline before giving up with ``WaitTimeoutError``, whose detail is
    ``on_timeout()``.  ``clock`` and ``sleep`` are injectable so a caller's tests need not wait in real time.
    """
    deadline = clock() + timeout
    while True:
        result = check()
        if result:
            return result
        remaining = deadline - clock()
        if remaining <= 0:
            raise WaitTimeoutError(what, timeout, on_timeout() if on_timeout is not None else "")
        if on_wait is not None:
            on_wait()
        sleep(min(interval, remaining))


class Periodic:
    """A daemon thread that calls ``tick`` every ``interval_s`` while a process serves (the API's retry worker for
    retrain triggers, its rollout evaluator): a periodic tick rather than a wait, it never returns a result, and a
    failing tick is logged and tried again at the next one."""

    def __init__(self, name: str, tick: Callable[[], object], interval_s: float) -> None:
        self.name = name
        self.tick = tick
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.tick()
            except Exception:  # a database hiccup must not end the loop; the next tick tries again
                log.exception("%s tick failed", self.name)
