"""Airflow's run API as the platform uses it (a fake: Airflow is an external server)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlplatform.operations.services import OrchestratorPort
from mlplatform.orchestration.airflow_client import AirflowError, AirflowUnreachableError, DagPausedError, DagRun
from mlplatform.retraining.policy import RetrainOrchestrator


@dataclass
class FakeOrchestrator(OrchestratorPort, RetrainOrchestrator):
    """Runs kept by id, as Airflow keeps them; they stay ``queued`` until a test calls ``finish``.

    A taken run id is refused with 409, as Airflow does.  ``down`` makes every call fail the way an unreachable
    server does; ``lose_next_answer`` creates the run but fails the call, like a timeout after Airflow had already
    accepted it.  A DAG in ``paused`` is refused as the real orchestrator refuses a DAG an operator paused.
    ``triggered`` records ``(dag_id, run_id, conf)`` of every run started, in order.
    """

    runs: dict[str, DagRun] = field(default_factory=dict)
    triggered: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    down: bool = False
    lose_next_answer: bool = False
    paused: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _check_up(self) -> None:
        if self.down:
            raise AirflowUnreachableError("Airflow is unreachable at http://127.0.0.1:9 (ConnectError)")

    def trigger(self, dag_id: str, conf: Mapping[str, Any], run_id: str | None = None) -> DagRun:
        self._check_up()
        if dag_id in self.paused:
            raise DagPausedError(f"{dag_id} is paused in Airflow (an operator paused it); no run was started")
        with self.lock:
            run_id = run_id or f"manual__{len(self.runs) + 1}"
            if run_id in self.runs:
                raise AirflowError("already exists", status_code=409, airflow_message="already exists")
            run = DagRun.model_validate({"dag_id": dag_id, "dag_run_id": run_id, "state": "queued", "conf": conf})
            self.runs[run_id] = run
            self.triggered.append((dag_id, run_id, dict(conf)))
        if self.lose_next_answer:
            self.lose_next_answer = False
            raise AirflowUnreachableError("read timeout after the run was created")
        return run

    def get_run(self, dag_id: str, run_id: str) -> DagRun:
        self._check_up()
        if run_id not in self.runs:
            raise AirflowError("not found", status_code=404)
        return self.runs[run_id]

    def list_runs(self, dag_id: str, limit: int) -> list[DagRun]:
        self._check_up()
        return list(self.runs.values())[:limit]

    def finish(self, run_id: str, state: str = "success", reason: str | None = None) -> None:
        """Move a run to its end state, as the Airflow scheduler would; a failed one may carry its reason."""
        self.runs[run_id] = self.runs[run_id].model_copy(update={"state": state, "failure_reason": reason})
