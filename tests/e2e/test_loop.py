"""The whole loop on the embedded stack, for real: MLflow, Airflow 3, the platform API, Prometheus and Alertmanager
(the end-to-end stack of tests/e2e/conftest.py), a served model, drifted traffic, the committed alert rules and
routing, the webhook's retrain policy, the training DAG on fresh data, the gate and the server's hot swap.

The world is small (400 customers, 40 days) and Prometheus evaluates every second, so the loop takes about two
minutes on two cores; the first champion is trained in-process (``driver.prepare``), the retrain through Airflow.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime

import httpx
import pytest

from mlplatform.config import Settings
from mlplatform.loop import driver, timeline
from mlplatform.registry.mlflow_registry import CHAMPION, ModelRegistry
from mlplatform.serving.client import predict
from mlplatform.specs import find_spec
from mlplatform.stack.prometheus import prometheus_url
from mlplatform.store import PlatformStore
from mlplatform.store.retrains import RetrainRecords
from tests.e2e.conftest import FRAUD_DATA, E2eWorld
from tests.e2e.conftest import LOOP_OPTIONS as OPTIONS

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

TIMELINE = [
    "baseline data",
    "baseline champion",
    "drifted data",
    "drifted traffic",
    "drift check",
    "alert firing",
    "webhook",
    "retrain",
    "gate",
    "new champion serving",
]


def test_drifted_traffic_ends_with_a_new_champion_serving(e2e_world: E2eWorld) -> None:
    settings, deployment = e2e_world.settings, e2e_world.fraud
    # on_step=print: the timeline shows in a failure's captured output
    result = driver.run_loop(settings, OPTIONS, FRAUD_DATA, on_step=print)

    assert [step.name for step in result.steps] == TIMELINE, result.message
    assert result.outcome == timeline.OUTCOME_PROMOTED, result.message
    assert result.loop_seconds is not None and 0 < result.loop_seconds < result.total_seconds

    alerts = httpx.get(f"{prometheus_url(settings)}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    assert any(a["labels"]["alertname"] == "DatasetDriftDetected" and a["state"] == "firing" for a in alerts)

    store = PlatformStore.connect(settings.db_url)
    try:
        triggered = [r for r in RetrainRecords(store).list(OPTIONS.model) if r.status == "triggered"]
        registry = ModelRegistry(settings, store=store)
        champion = registry.alias_holder(OPTIONS.model, CHAMPION)
    finally:
        store.dispose()
    assert [r.dag_run_id for r in triggered] == [result.dag_run_id]
    assert triggered[0].alertname == "DatasetDriftDetected"

    from mlplatform.stack.embedded import airflow_client

    with airflow_client(settings) as airflow:
        assert airflow.get_run(f"train_{OPTIONS.model}", str(result.dag_run_id)).state == "success"
    assert champion is not None and champion.version == result.new_version != result.old_version
    assert champion.lineage["dag_run_id"] == result.dag_run_id
    assert any("beats champion" in reason for reason in result.gate_reasons), result.gate_reasons

    answer = predict(deployment, [{"customer_id": 1001, "amount": 42.0}])
    assert str(answer["version"]) == result.new_version


ROLLOUT_TIMELINE = ["champion serving", "shadow", "split", "rolled back by the test", "online quality"]


def test_a_rebalanced_challenger_is_rolled_back_by_the_test_on_late_labels(e2e_world: E2eWorld) -> None:
    """`make demo`'s rollout: a challenger trained with balanced class weights beats the champion on ROC AUC (the
    gate's metric) but its probabilities are inflated; kept challenger (`--no-promote`), it enters as a shadow, then
    a split, and the platform's evaluator (in the API process) rolls it back on chargebacks that arrive late."""
    from mlplatform.loop.rollout import OUTCOME_ROLLED_BACK, RolloutOptions, run_rollout
    from mlplatform.store.audit import AuditLog
    from mlplatform.training.pipeline import TrainingRequest, run_all

    settings = e2e_world.settings
    request = TrainingRequest(
        model=OPTIONS.model,
        run_key="e2e/rebalanced",
        actor="pytest",
        estimator_params={"class_weight": "balanced"},
        promote=False,
    )
    trained = run_all(settings, request)
    assert not trained.promoted and "not promoted" in trained.decision

    result = run_rollout(settings, RolloutOptions(model=OPTIONS.model, known_at="labelled_at"), on_step=print)

    assert [step.name for step in result.steps] == ROLLOUT_TIMELINE, result.message
    assert result.outcome == OUTCOME_ROLLED_BACK and result.new_version == trained.version
    assert result.total_seconds < 100
    store = PlatformStore.connect(settings.db_url)
    try:
        champion = ModelRegistry(settings, store=store).alias_holder(OPTIONS.model, CHAMPION)
        [rollback] = AuditLog(store).query(action="rollout.rollback")
    finally:
        store.dispose()
    assert champion is not None and champion.version == result.old_version
    # worse, or credibly not better by the policy's minimum effect
    assert rollback.actor == "rollout-evaluator" and rollback.detail["test"]["upper"] < 0.01
    # every customer is the champion's again once the server has read the withdrawn plan (its next alias poll)
    customers = [{"customer_id": customer, "amount": 42.0} for customer in range(1001, 1041)]
    answered: set[str] = set()
    for _ in range(20):
        answer = predict(e2e_world.fraud, customers)
        answered = {str(row.get("version", answer["version"])) for row in answer["predictions"]}
        if answered == {result.old_version}:
            break
        time.sleep(0.5)
    assert answered == {result.old_version}


@pytest.mark.parametrize(
    ("prometheus", "alertmanager", "missing"),
    [
        (None, None, "prometheus and alertmanager not installed"),
        (None, sys.executable, "prometheus not installed"),
        (sys.executable, None, "alertmanager not installed"),
    ],
    ids=["neither", "only-alertmanager", "only-prometheus"],
)
def test_without_prometheus_the_loop_says_it_skips_the_alert_path(
    settings: Settings, prometheus: str | None, alertmanager: str | None, missing: str
) -> None:
    """The alert half needs both binaries; without either the loop ends after the drift check and names what is
    missing.  The binaries are settings, so the test holds whichever of them this machine has installed (a present
    one is stood in for by the Python interpreter: the loop stops before running anything)."""
    absent = settings.model_copy(
        update={
            "prometheus": settings.prometheus.model_copy(
                update={
                    "prometheus_binary": prometheus or "no-such-prometheus",
                    "alertmanager_binary": alertmanager or "no-such-alertmanager",
                }
            )
        }
    )
    result = timeline.LoopResult(started=datetime.now(UTC))
    recorder = timeline.Recorder(result, timeline.ignore_step)
    spec = find_spec(absent.model_roots, OPTIONS.model)
    assert not driver._alert_path(absent, spec, None, OPTIONS.timeouts, recorder, timeline.quiet)  # type: ignore[arg-type]
    assert result.outcome == timeline.OUTCOME_ALERT_PATH_SKIPPED
    assert result.message.startswith("skipped the alert path (Prometheus -> Alertmanager -> webhook -> retrain)")
    assert f"{missing} (Debian packages" in result.message
