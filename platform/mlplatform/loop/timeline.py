"""The loop's record: each step timed as it ends, the outcome, and the error that names a stalled step.

Kept apart from the steps so the CLI, the e2e test and the benchmark can read a result without the machinery that
produced it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

OUTCOME_PROMOTED = "promoted"
OUTCOME_KEPT = "kept"
OUTCOME_NO_DRIFT = "no_drift"
OUTCOME_ALERT_PATH_SKIPPED = "alert_path_skipped"
OUTCOME_RETRAIN_SKIPPED = "retrain_skipped"

Say = Callable[[str], None]


class LoopStalledError(RuntimeError):
    """A step did not happen in time (or failed); the message names the step and where to look."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"{step}: {message}")
        self.step = step


@dataclass(frozen=True)
class Step:
    """One line of the timeline."""

    name: str
    started: datetime
    finished: datetime
    detail: str

    @property
    def seconds(self) -> float:
        return (self.finished - self.started).total_seconds()


@dataclass
class LoopResult:
    """The timeline and what the loop ended with."""

    started: datetime
    steps: list[Step] = field(default_factory=list)
    outcome: str = ""
    message: str = ""
    old_version: str | None = None
    new_version: str | None = None
    dag_run_id: str | None = None
    gate_reasons: list[str] = field(default_factory=list)
    first_drifted_request: datetime | None = None

    @property
    def finished(self) -> datetime:
        return self.steps[-1].finished if self.steps else self.started

    @property
    def total_seconds(self) -> float:
        return (self.finished - self.started).total_seconds()

    @property
    def loop_seconds(self) -> float | None:
        """From the first drifted request to the new champion serving: the loop's reaction time."""
        if self.outcome != OUTCOME_PROMOTED or self.first_drifted_request is None:
            return None
        return (self.finished - self.first_drifted_request).total_seconds()

    def step(self, name: str) -> Step | None:
        return next((step for step in self.steps if step.name == name), None)


class Recorder:
    """Times each step and reports it as it ends, so a long loop shows progress."""

    def __init__(self, result: LoopResult, on_step: Callable[[Step], None]) -> None:
        self.result = result
        self.on_step = on_step
        self.began = datetime.now(UTC)

    def start(self) -> None:
        self.began = datetime.now(UTC)

    def done(self, name: str, detail: str) -> Step:
        step = Step(name, self.began, datetime.now(UTC), detail)
        self.result.steps.append(step)
        self.on_step(step)
        self.began = step.finished
        return step


def quiet(_: str) -> None:
    """Default progress sink: silent."""


def ignore_step(_: Step) -> None:
    """Default step sink: nothing."""
