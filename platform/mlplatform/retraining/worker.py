"""The retry worker: a daemon thread in the API process that retries pending retrain triggers until Airflow takes them.

A periodic tick, not a wait: it lives as long as the API and never returns a result.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlplatform.retraining.policy import RetrainPolicy

log = logging.getLogger(__name__)


class RetrainWorker:
    """A daemon thread in the API process that retries pending triggers until Airflow takes them."""

    def __init__(self, policy: RetrainPolicy, interval_s: float) -> None:
        self.policy = policy
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="retrain-worker", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.policy.retry_due()
            except Exception:  # a database hiccup must not end the loop; the next tick tries again
                log.exception("retrain worker tick failed")
