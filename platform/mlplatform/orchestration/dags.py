"""Airflow DAGs generated from model specs.

``build_training_dag(spec)`` returns the ``train_<model>`` DAG: four TaskFlow tasks that call the plain functions
in ``mlplatform.training.pipeline``.  Params let a run override hyperparameters and the data window; every task
retries on transient errors (a server down, a timeout), and the pipeline functions are idempotent per DAG run, so
a retry never registers a second version.  A deterministic error (a bad spec, unusable data, an unknown feature
service, a model outside the trust policy: ``DETERMINISTIC_ERRORS``) fails the task at once, since a retry would
fail the same way.  Every failure's reason is pushed to XCom under ``FAILURE_REASON_KEY`` so the platform can show
it without reading task logs.

Heavy libraries (MLflow, Feast, scikit-learn) are imported inside the tasks only: the dag-processor parses this
often and must stay fast.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, TypeVar

from mlplatform.specs import ModelSpec

if TYPE_CHECKING:
    from airflow.sdk import DAG

    from mlplatform.training.pipeline import TrainingRequest

DEFAULT_START = datetime(2026, 1, 1)
TASK_RETRIES = 2
TASK_RETRY_DELAY = timedelta(seconds=20)
FAILURE_REASON_KEY: Final = "mlplatform_failure_reason"
"""XCom key of a failed task's reason (one line), read back by ``AirflowClient.failure_reason``."""
MAX_REASON_CHARS: Final = 1000
DETERMINISTIC_ERRORS: Final[tuple[type[BaseException], ...]] = (ValueError, LookupError, ImportError, TypeError)
"""Errors a retry cannot cure: the platform's SpecError, TrainingDataError and UntrustedModelError are ValueErrors,
as are an unknown feature service and a missing column; a missing class is an ImportError."""
Result = TypeVar("Result")


def failure_reason(error: BaseException) -> str:
    """One line saying what failed: the error's type and the first line of its message."""
    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {message}"[:MAX_REASON_CHARS]


def run_step(step: Callable[[], Result], model: str) -> Result:
    """Run a task's step for ``model``: a deterministic error fails the task without retries; every failure's
    reason goes to XCom.  Each line the step logs names the model and the DAG run, with secrets redacted."""
    from airflow.sdk import get_current_context
    from airflow.sdk.exceptions import AirflowFailException

    from mlplatform import logs

    context = get_current_context()
    dag_run = context["dag_run"]
    with logs.airflow_task_context(model, f"{dag_run.dag_id}/{dag_run.run_id}"):
        try:
            return step()
        except Exception as error:
            reason = failure_reason(error)
            context["ti"].xcom_push(key=FAILURE_REASON_KEY, value=reason)
            if isinstance(error, DETERMINISTIC_ERRORS):
                raise AirflowFailException(f"{reason} (not retried: a retry would fail the same way)") from error
            raise


def request_from_context(spec_name: str) -> TrainingRequest:
    """Turn the running task's DAG run (params, conf, ids) into a TrainingRequest."""
    from airflow.sdk import get_current_context

    from mlplatform.training.pipeline import TrainingRequest

    context = get_current_context()
    params: dict[str, Any] = dict(context["params"])
    dag_run = context["dag_run"]
    window_end = params.get("window_end")
    requested_by = params.get("requested_by") or "schedule"
    return TrainingRequest(
        model=spec_name,
        run_key=f"{dag_run.dag_id}/{dag_run.run_id}",
        actor=f"{requested_by} via airflow:{dag_run.dag_id}/{dag_run.run_id}",
        reason=str(params.get("reason") or "scheduled"),
        window_days=params.get("window_days"),
        window_end=datetime.fromisoformat(window_end) if window_end else None,
        estimator_params=dict(params.get("estimator_params") or {}),
        promote=bool(params.get("promote", True)),
        dag_id=dag_run.dag_id,
        dag_run_id=dag_run.run_id,
    )


def _dag_arguments(spec: ModelSpec, dag_id: str, description: str, schedule: str | None, kind: str) -> dict[str, Any]:
    """What every DAG of a model shares: live at once (a paused DAG is an operator's decision the platform keeps),
    no catch-up, one run at a time, the task retries, the owner and the tags the UI filters by."""
    return {
        "dag_id": dag_id,
        "description": description,
        "schedule": schedule,
        "start_date": DEFAULT_START,
        "catchup": False,
        "max_active_runs": 1,
        "is_paused_upon_creation": False,
        "tags": ["mlplatform", kind, spec.name],
        "default_args": {"retries": TASK_RETRIES, "retry_delay": TASK_RETRY_DELAY, "owner": spec.owner},
        "render_template_as_native_obj": True,
    }


def build_training_dag(spec: ModelSpec, run_schedule: bool = True) -> DAG:
    """The training DAG of one model spec; without ``run_schedule`` it runs only when triggered."""
    from airflow.sdk import Param, dag, task

    name = spec.name

    @dag(
        **_dag_arguments(
            spec,
            spec.training_dag_id,
            f"Train, evaluate, register and gate {name} (generated from its model spec)",
            spec.schedule if run_schedule else None,
            "training",
        ),
        params={
            "window_days": Param(spec.data.window_days, type="integer", minimum=1, maximum=3650),
            "window_end": Param(None, type=["null", "string"], description="ISO time; default: end of the data"),
            "estimator_params": Param({}, type="object", description="Overrides of the spec's estimator params"),
            "promote": Param(True, type="boolean", description="false: a passing version stays challenger"),
            "reason": Param("scheduled", type="string", maxLength=500),
            "requested_by": Param("schedule", type="string", maxLength=128),
        },
    )
    def training_pipeline() -> None:
        @task
        def prepare_training_set() -> str:
            from mlplatform.config import get_settings
            from mlplatform.training import pipeline

            return run_step(lambda: pipeline.prepare_training_set(get_settings(), request_from_context(name)), name)

        @task
        def train_and_evaluate(mlflow_run_id: str) -> str:
            from mlplatform.config import get_settings
            from mlplatform.training import pipeline

            run_step(
                lambda: pipeline.train_and_evaluate(get_settings(), request_from_context(name), mlflow_run_id), name
            )
            return mlflow_run_id

        @task
        def register_version(mlflow_run_id: str) -> str:
            from mlplatform.config import get_settings
            from mlplatform.training import pipeline

            return run_step(
                lambda: pipeline.register_version(get_settings(), request_from_context(name), mlflow_run_id), name
            )

        @task
        def gate_and_promote(version: str) -> dict[str, Any]:
            from dataclasses import asdict

            from mlplatform.config import get_settings
            from mlplatform.training import pipeline

            return asdict(
                run_step(lambda: pipeline.gate_and_promote(get_settings(), request_from_context(name), version), name)
            )

        gate_and_promote(register_version(train_and_evaluate(prepare_training_set())))  # type: ignore[arg-type]

    return training_pipeline()


def build_training_dags(specs: dict[str, ModelSpec], run_schedules: bool) -> dict[str, DAG]:
    """One training DAG per spec, keyed by DAG id (what a DAG file puts in its globals)."""
    return {spec.training_dag_id: build_training_dag(spec, run_schedules) for spec in specs.values()}


def build_monitoring_dag(spec: ModelSpec, run_schedule: bool = True) -> DAG:
    """The ``monitor_<model>`` DAG: one task running the drift check on the spec's monitoring schedule.

    Why a task that calls ``run_drift_check`` rather than the CLI: the task's return value (the recorded check)
    lands in XCom for the Airflow UI, and the check's errors surface as task failures with their traceback.
    """
    from airflow.sdk import Param, dag, task

    name = spec.name

    @dag(
        **_dag_arguments(
            spec,
            spec.monitoring_dag_id,
            f"Drift check of {name}: served traffic vs the champion's training reference",
            spec.monitoring.schedule if run_schedule else None,
            "monitoring",
        ),
        params={
            "window_hours": Param(
                spec.monitoring.window_hours, type="integer", minimum=1, maximum=24 * 90, description="Log hours"
            ),
        },
    )
    def monitoring_pipeline() -> None:
        @task
        def drift_check() -> dict[str, Any]:
            from airflow.sdk import get_current_context

            from mlplatform.config import get_settings
            from mlplatform.monitoring.drift_check import check_json, run_drift_check

            context = get_current_context()
            dag_run = context["dag_run"]
            check = run_step(
                lambda: run_drift_check(
                    get_settings(),
                    name,
                    actor=f"airflow:{dag_run.dag_id}/{dag_run.run_id}",
                    window_hours=int(context["params"]["window_hours"]),
                ),
                name,
            )
            summary = check_json(check)
            summary.pop("features")  # per-feature results live in the platform DB; XCom keeps the verdict
            return summary

        drift_check()

    return monitoring_pipeline()


def build_monitoring_dags(specs: dict[str, ModelSpec], run_schedules: bool) -> dict[str, DAG]:
    """One monitoring DAG per spec, keyed by DAG id."""
    return {spec.monitoring_dag_id: build_monitoring_dag(spec, run_schedules) for spec in specs.values()}


def build_labels_dag(spec: ModelSpec, run_schedule: bool = True) -> DAG:
    """The ``labels_<model>`` DAG: ingest the label source's rows of the quality window (late labels, deduplicated),
    then measure the online quality they make possible (what the ModelQualityDropped alert and rollouts read)."""
    from airflow.sdk import Param, dag, task

    name = spec.name

    @dag(
        **_dag_arguments(
            spec,
            spec.labels_dag_id,
            f"Late labels of {name} from its label source, and its online quality",
            spec.monitoring.labels_schedule if run_schedule else None,
            "monitoring",
        ),
        params={"window_end": Param(None, type=["null", "string"], description="ISO time; default: now")},
    )
    def labels_pipeline() -> None:
        @task
        def ingest_labels() -> dict[str, Any]:
            from airflow.sdk import get_current_context

            from mlplatform.config import get_settings
            from mlplatform.monitoring.quality import ingest_label_source, refresh_quality
            from mlplatform.specs import find_spec
            from mlplatform.store import PlatformStore

            settings = get_settings()
            raw_end = get_current_context()["params"].get("window_end")
            end = datetime.fromisoformat(raw_end) if raw_end else None

            def ingest() -> dict[str, Any]:
                current = find_spec(settings.model_roots, name)
                store = PlatformStore.connect(settings.db_url)
                try:
                    stored = ingest_label_source(settings, store, current, end)
                    quality, counts = refresh_quality(settings, store, current, end)
                finally:
                    store.dispose()
                return {
                    "inserted": stored.inserted,
                    "duplicates": stored.duplicates,
                    "conflicts": len(stored.conflicts),
                    "joined": counts,
                    "quality": quality,
                }

            return run_step(ingest, name)

        ingest_labels()

    return labels_pipeline()


def build_labels_dags(specs: dict[str, ModelSpec], run_schedules: bool) -> dict[str, DAG]:
    """One labels DAG per spec, keyed by DAG id."""
    return {spec.labels_dag_id: build_labels_dag(spec, run_schedules) for spec in specs.values()}
