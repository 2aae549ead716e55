"""A drift check of one model: champion's training reference vs the last hours of its prediction log.

``run_drift_check`` is what the ``monitor_<model>`` DAG, the CLI and the tests call.  It always records a result
in the platform DB (``mlplatform.store.drift``): a window with fewer logged rows than the spec's ``min_rows`` is
``insufficient_data`` (row count and minimum kept, no verdict), because tiny samples make every test noisy and a
quiet night must not page anyone as drift.  Otherwise the comparison (``mlplatform.monitoring.drift.analyse``)
gives ``drift`` or ``no_drift`` and its Evidently report is kept by the report store the settings name
(``mlplatform.monitoring.reports``: the state directory, or MLflow where API replicas and workers are many).

Memory stays bounded at any window size: the window is counted and sampled where the log lives
(``sample_prediction_log``: a streaming parquet scan, or SQL in PostgreSQL), never loaded whole.  At most the
smaller of the spec's ``max_rows`` and ``settings.monitoring.max_sample_rows`` rows reach Evidently; a window that
fits is compared whole, exactly as before sampling moved into the data layer.

Failures to reach MLflow or the log raise (nothing recorded): ``DriftCheckStale`` alerts when checks stop
succeeding, which is the right signal for those.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlplatform.monitoring.drift import PREDICTION, analyse
from mlplatform.monitoring.reports import open_report_store
from mlplatform.specs import ModelSpec, find_spec
from mlplatform.store.drift import DriftCheck, DriftResults

if TYPE_CHECKING:
    import pandas as pd

    from mlplatform.config import Settings
    from mlplatform.predictions.records import WindowSample
    from mlplatform.registry.mlflow_registry import VersionInfo
    from mlplatform.store.db import PlatformStore


class DriftCheckError(RuntimeError):
    """The check cannot run (no champion, no reference snapshot); the message says what to do."""


def _champion(settings: Settings, store: PlatformStore, model: str) -> VersionInfo:
    from mlplatform.registry.mlflow_registry import CHAMPION, ModelRegistry

    champion = ModelRegistry(settings, store=store).alias_holder(model, CHAMPION)
    if champion is None or not champion.run_id:
        raise DriftCheckError(f"{model} has no champion: train and promote a version before checking drift")
    return champion


def model_inputs(settings: Settings, run_id: str) -> list[str]:
    """The model inputs recorded on the training run: the columns a check reads from the log."""
    from mlplatform.registry.lineage import Lineage
    from mlplatform.registry.mlflow_registry import mlflow_client

    tags = mlflow_client(settings).get_run(run_id).data.tags
    return list(json.loads(tags[Lineage.MODEL_INPUTS_TAG]))


def load_reference(settings: Settings, run_id: str) -> tuple[pd.DataFrame, list[str]]:
    """The reference snapshot logged with the training run, and the model inputs recorded on that run."""
    import mlflow.artifacts
    import pandas as pd
    from mlflow.exceptions import MlflowException

    from mlplatform.training.pipeline import REFERENCE_ARTIFACT

    features = model_inputs(settings, run_id)
    with tempfile.TemporaryDirectory(prefix="mlp-reference-") as scratch:
        try:
            local = mlflow.artifacts.download_artifacts(
                run_id=run_id,
                artifact_path=REFERENCE_ARTIFACT,
                tracking_uri=settings.mlflow.resolved_tracking_uri(),
                dst_path=scratch,
            )
        except MlflowException as error:
            raise DriftCheckError(f"run {run_id} has no {REFERENCE_ARTIFACT}: {error.message}") from None
        reference = pd.read_parquet(local)
    return reference, features


def current_frame(log: pd.DataFrame, features: list[str], champion_version: str) -> pd.DataFrame:
    """The logged inputs, plus the champion's scores as ``prediction`` (NaN for rows another version served).

    An input the log lacks becomes an all-missing column, which the data quality counts then show.
    """
    frame = log.reindex(columns=features).astype("float64")
    frame[PREDICTION] = log["score"].where(log["model_version"].astype(str) == champion_version)
    return frame


def _base_check(spec: ModelSpec, champion: VersionInfo, start: datetime, end: datetime, rows: int) -> DriftCheck:
    now = datetime.now(UTC)
    return DriftCheck(
        model=spec.name,
        model_version=champion.version,
        reference_run_id=str(champion.run_id),
        status="insufficient_data",
        window_start=start,
        window_end=end,
        rows=rows,
        rows_compared=0,
        min_rows=spec.monitoring.min_rows,
        reference_rows=0,
        drift_share_threshold=spec.monitoring.drift_share,
        started_at=now,
        finished_at=now,
        actor="",
    )


def sample_limit(settings: Settings, spec: ModelSpec) -> int:
    """Most rows a check of this model reads: the spec's ``max_rows``, capped by the operator's memory bound."""
    return min(spec.monitoring.max_rows, settings.monitoring.max_sample_rows)


def _compare(settings: Settings, spec: ModelSpec, check: DriftCheck, window: WindowSample) -> tuple[DriftCheck, Any]:
    """Run the comparison; returns the check with its results and the analysis (for the HTML report)."""
    import evidently

    reference, features = load_reference(settings, check.reference_run_id)
    current = current_frame(window.frame, features, check.model_version)
    # Counted over the whole window, like the rows: the sample decides values, never whether a test runs.
    prediction_rows = window.rows_by_version.get(check.model_version, 0)
    analysis = analyse(
        reference,
        current,
        features,
        drift_share_threshold=spec.monitoring.drift_share,
        max_rows=window.max_rows,
        with_prediction=prediction_rows >= spec.monitoring.min_rows,
    )
    detail = {
        "evidently_version": evidently.__version__,
        "sampled": window.sampled,
        "max_sample_rows": window.max_rows,
        "prediction_rows": prediction_rows,
        "served_versions": sorted(window.rows_by_version),
    }
    return replace(
        check,
        status="drift" if analysis.dataset_drift else "no_drift",
        rows_compared=analysis.rows_compared,
        reference_rows=len(reference),
        drift_share=analysis.drift_share,
        dataset_drift=analysis.dataset_drift,
        prediction_method=analysis.prediction_method,
        prediction_drift_score=analysis.prediction_drift_score,
        prediction_drifted=analysis.prediction_drifted,
        features=analysis.features,
        detail=detail,
    ), analysis


def _window(settings: Settings, spec: ModelSpec, start: datetime, end: datetime, features: list[str]) -> WindowSample:
    from mlplatform.predictions.reader import sample_prediction_log

    limit = sample_limit(settings, spec)
    return sample_prediction_log(settings, spec.name, start, end, features=features, max_rows=limit)


def _keep_report(settings: Settings, results: DriftResults, check: DriftCheck, analysis: Any) -> None:
    """Render the report, hand it to the report store, then mark the check as having one."""
    with tempfile.TemporaryDirectory(prefix="mlp-drift-report-") as scratch:
        rendered = Path(scratch) / "report.html"
        analysis.save_html(rendered)
        open_report_store(settings).put(check, rendered)
    assert check.id is not None  # the store refuses a check without its id
    results.set_has_report(check.id)


def run_drift_check(
    settings: Settings,
    model: str,
    *,
    actor: str,
    window_hours: int | None = None,
    now: datetime | None = None,
    since: datetime | None = None,
    store: PlatformStore | None = None,
) -> DriftCheck:
    """Check the last ``window_hours`` (default: the spec's) before ``now``, record the result, return it.

    ``since`` starts the window at that instant instead: the closed-loop demo checks exactly the traffic it sent.
    """
    from mlplatform.store.db import PlatformStore

    spec = find_spec(settings.model_roots, model)
    owned = store is None
    store = store or PlatformStore.connect(settings.db_url)
    try:
        champion = _champion(settings, store, model)
        end = (now or datetime.now(UTC)).astimezone(UTC)
        start = since.astimezone(UTC) if since else end - timedelta(hours=window_hours or spec.monitoring.window_hours)
        window = _window(settings, spec, start, end, model_inputs(settings, str(champion.run_id)))
        check = replace(_base_check(spec, champion, start, end, window.rows), actor=actor[:128])
        analysis = None
        if window.rows >= spec.monitoring.min_rows:
            check, analysis = _compare(settings, spec, check, window)
        results = DriftResults(store)
        check_id = results.record(replace(check, finished_at=datetime.now(UTC)))
        if analysis is not None:
            _keep_report(settings, results, replace(check, id=check_id), analysis)
        recorded = results.get(model, check_id)
        assert recorded is not None  # just written in this process
        return recorded
    finally:
        if owned:
            store.dispose()


def check_json(check: DriftCheck) -> dict[str, Any]:
    """The check as JSON-ready values (times in ISO 8601): for ``--json`` and the DAG task's XCom."""
    encoded = json.dumps(asdict(check), default=lambda value: value.isoformat())
    decoded: dict[str, Any] = json.loads(encoded)
    return decoded
