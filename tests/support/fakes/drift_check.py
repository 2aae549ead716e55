"""``run_drift_check`` without MLflow and Evidently (both are exercised in tests/integration and tests/ui)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from mlplatform.config import Settings
from mlplatform.store import PlatformStore
from mlplatform.store.drift import DriftCheck, DriftResults


class FakeDriftCheck:
    """Returns (recording them, as the real check does) or raises the given results in turn; records each call."""

    def __init__(self, *results: DriftCheck | Exception) -> None:
        self.results = list(results)
        self.calls: list[tuple[str, str]] = []

    def __call__(
        self, settings: Settings, model: str, *, actor: str, store: PlatformStore | None = None, **window: object
    ) -> DriftCheck:
        """The window (``window_hours``, ``now``, ``since``) is the real check's business; the fake ignores it."""
        self.calls.append((model, actor))
        result = self.results.pop(0)
        if isinstance(result, Exception):
            raise result
        assert store is not None, "the UI passes its platform store"
        results = DriftResults(store)
        found = results.get(model, results.record(replace(result, actor=actor)))
        assert found is not None
        return found


if TYPE_CHECKING:
    # The fake stands in for a function, not a class: mypy checks it stays callable as that function is.
    from mlplatform.monitoring.drift_check import run_drift_check

    _stays_in_step = run_drift_check
    _stays_in_step = FakeDriftCheck()
