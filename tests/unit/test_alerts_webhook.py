"""The Alertmanager webhook and the retraining policy, in-process: the real app over a real sqlite platform DB, with
``FakeOrchestrator`` for Airflow (an external server this unit test does not start; tests/integration/
test_retrain_airflow.py runs the same path against a real one).

Covered: authentication (401), payload validation (400), firing drift alerts triggering the model's training DAG
with the reason in the conf, idempotency (a replay never starts a second run, even after a lost answer),
cooldown, a single retrain in flight, resolved and non-drift alerts ignored, Airflow down (pending, retried with
backoff, then triggered; or given up), records, audit events and the metric.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mlplatform.config import Settings
from mlplatform.operations.services import ApiServices
from mlplatform.retraining.alertmanager import WEBHOOK_TOKEN_PREFIX, webhook_token
from mlplatform.store import PlatformStore
from mlplatform.webapp import create_app
from tests.support.alerts import alert, payload
from tests.support.api_world import MODEL, cheap_hash
from tests.support.fakes.orchestrator import FakeOrchestrator
from tests.support.waiting import wait_for

DAG = f"train_{MODEL}"
WEBHOOK = "/api/v1/alerts/alertmanager"


@dataclass
class Hook:
    client: TestClient
    services: ApiServices
    airflow: FakeOrchestrator
    settings: Settings

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {webhook_token(self.settings)}"}

    def send(self, *alerts: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        response = self.client.post(WEBHOOK, json=payload(*alerts), headers=self.auth if headers is None else headers)
        assert response.status_code == 200, response.text
        return response.json()["retrains"]

    def metric(self, result: str, model: str = MODEL) -> float:
        value = self.services.metrics.registry.get_sample_value(
            "mlplatform_retrain_triggers_total", {"model": model, "result": result}
        )
        return float(value or 0.0)


def make_hook(settings: Settings, **alerts: Any) -> Hook:
    policy = type(settings.alerts).model_validate({**settings.alerts.model_dump(), **alerts})
    settings = settings.model_copy(update={"alerts": policy})
    store = PlatformStore.connect(settings.db_url)
    airflow = FakeOrchestrator()
    services = ApiServices.from_settings(
        settings, store=store, password_hash=cheap_hash(), orchestrator_factory=lambda: airflow
    )
    client = TestClient(create_app(settings, services), client=("198.51.100.9", 40000))
    return Hook(client, services, airflow, settings)


@pytest.fixture()
def hook(settings: Settings) -> Hook:
    return make_hook(settings)


# -- authentication and validation --------------------------------------------------------------------------------


def test_the_webhook_token_is_generated_once_private_and_distinct_from_api_tokens(hook: Hook) -> None:
    token = webhook_token(hook.settings)
    path = hook.settings.layout.webhook_token
    assert token.startswith(WEBHOOK_TOKEN_PREFIX) and len(token) > 40
    assert path.stat().st_mode & 0o077 == 0
    assert webhook_token(hook.settings) == token
    # It is not an API token: the rest of the API does not accept it.
    assert hook.client.get("/api/v1/models", headers=hook.auth).status_code == 401


def test_a_configured_token_wins(settings: Settings) -> None:
    configured = make_hook(settings, webhook_token="configured-secret-0123456789")
    assert webhook_token(configured.settings) == "configured-secret-0123456789"
    assert configured.send(alert())[0]["status"] == "triggered"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "}],
    ids=["missing", "wrong", "not-bearer", "empty"],
)
def test_without_the_token_the_answer_is_401_and_audited(hook: Hook, headers: dict[str, str]) -> None:
    response = hook.client.post(WEBHOOK, json=payload(alert()), headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert hook.airflow.triggered == []
    [event] = hook.services.audit.query(action="alert.receive")
    assert (event.actor, event.result, event.client) == ("anonymous", "unauthenticated", "198.51.100.9")


def test_a_user_api_token_is_not_the_webhook_token(hook: Hook) -> None:
    hook.services.auth.create_user("root", "admin", None)
    admin_token = hook.services.auth.create_token("root", "t", ttl_days=1).secret
    response = hook.client.post(WEBHOOK, json=payload(alert()), headers={"Authorization": f"Bearer {admin_token}"})
    assert response.status_code == 401


def _without(body: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != key}


MALFORMED: dict[str, Any] = {
    "not-json": b"{not json",
    "array": [],
    "version-3": {**payload(alert()), "version": "3"},
    "no-alerts": _without(payload(alert()), "alerts"),
    "bad-status": payload({**alert(), "status": "pending"}),
    "bad-fingerprint": payload({**alert(), "fingerprint": "<script>"}),
    "naive-startsAt": payload({**alert(), "startsAt": "2026-03-01T12:00:00"}),
    "labels-not-strings": payload({**alert(), "labels": {"alertname": 1}}),
    "nested-too-deep": b"[" * 5000 + b"]" * 5000,
    "5000-digit-number": b'{"version": ' + b"9" * 5000 + b"}",
    "not-utf8": b'{"version": "\xc3\x28"}',
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_payload_is_a_400_problem(hook: Hook, body: Any) -> None:
    if isinstance(body, bytes):
        response = hook.client.post(WEBHOOK, content=body, headers={**hook.auth, "Content-Type": "application/json"})
    else:
        response = hook.client.post(WEBHOOK, json=body, headers=hook.auth)
    assert response.status_code == 400, response.text
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert problem["type"] == "/problems/malformed-alert" and problem["status"] == 400
    assert "<script>" not in response.text, "input values are never echoed"
    assert hook.airflow.triggered == []


@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "streamed"])
def test_a_body_past_the_limit_is_a_413_problem_whether_declared_or_streamed(hook: Hook, chunked: bool) -> None:
    from mlplatform.api.routers.alerts import MAX_BODY_BYTES

    oversized = b'{"version": "4", "padding": "' + b"x" * MAX_BODY_BYTES + b'"}'
    content: Any = iter([oversized[:1024], oversized[1024:]]) if chunked else oversized
    response = hook.client.post(WEBHOOK, content=content, headers={**hook.auth, "Content-Type": "application/json"})
    assert response.status_code == 413, response.text
    assert response.json()["type"] == "/problems/too-large"
    assert hook.airflow.triggered == []


# -- the policy ---------------------------------------------------------------------------------------------------


def test_a_firing_drift_alert_triggers_the_training_dag_with_the_reason(hook: Hook) -> None:
    [record] = hook.send(alert())
    [(dag_id, run_id, conf)] = hook.airflow.triggered
    assert dag_id == DAG and run_id == record["dag_run_id"] and run_id.startswith("retrain__")
    assert conf["requested_by"] == "alertmanager"
    assert conf["reason"].startswith("DatasetDriftDetected since 2026-03-01T12:00:00+00:00: fraud_detector: served")
    assert record["status"] == "triggered" and record["attempts"] == 1
    assert record["idempotency_key"] == "a1b2c3d4e5f60718@2026-03-01T12:00:00+00:00"
    assert hook.metric("triggered") == 1
    [event] = hook.services.audit.query(actor="alertmanager")
    assert (event.action, event.target, event.result, event.to_value) == ("retrain.trigger", MODEL, "ok", run_id)
    assert event.client == "198.51.100.9" and event.detail["fingerprint"] == "a1b2c3d4e5f60718"


def test_a_replayed_alert_never_starts_a_second_run(hook: Hook) -> None:
    first = hook.send(alert())
    again = hook.send(alert())
    assert len(hook.airflow.triggered) == 1
    assert again[0]["status"] == "skipped" and again[0]["skip_reason"] == "duplicate"
    assert again[0]["idempotency_key"] == first[0]["idempotency_key"]
    assert hook.metric("duplicate") == 1


def test_a_replay_stays_a_duplicate_after_the_cooldown(settings: Settings) -> None:
    hook = make_hook(settings, cooldown_s=0)
    hook.send(alert())
    hook.airflow.finish(hook.airflow.triggered[0][1])
    assert hook.send(alert())[0]["skip_reason"] == "duplicate"
    assert len(hook.airflow.triggered) == 1


def test_concurrent_deliveries_of_one_alert_start_one_run(hook: Hook) -> None:
    """Two Alertmanager replicas notify at once: the unique claim on the key lets one through."""
    results: list[Any] = []
    threads = [threading.Thread(target=lambda: results.extend(hook.send(alert()))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(hook.airflow.triggered) == 1
    assert sorted(r["status"] for r in results) == ["skipped", "skipped", "skipped", "triggered"]


def test_a_new_alert_in_the_cooldown_is_skipped(hook: Hook) -> None:
    hook.send(alert())
    hook.airflow.finish(hook.airflow.triggered[0][1])
    later = alert("FeatureDriftDetected", fingerprint="ffff000011112222", feature="amount")
    [record] = hook.send(later)
    assert (record["status"], record["skip_reason"]) == ("skipped", "cooldown")
    assert len(hook.airflow.triggered) == 1 and hook.metric("skipped_cooldown") == 1


def test_one_retrain_in_flight_per_model(settings: Settings) -> None:
    hook = make_hook(settings, cooldown_s=0)
    hook.send(alert())
    run_id = hook.airflow.triggered[0][1]
    hook.airflow.finish(run_id, "running")
    second = alert(starts_at=datetime(2026, 3, 2, tzinfo=UTC))
    assert hook.send(second)[0]["skip_reason"] == "in_flight"
    assert hook.metric("skipped_in_flight") == 1
    hook.airflow.finish(run_id, "failed")
    assert hook.send(second)[0]["status"] == "triggered", "skipped alerts claim nothing: a repeat may act"
    assert len(hook.airflow.triggered) == 2


def test_resolved_non_drift_and_unknown_model_alerts_are_recorded_not_acted_on(hook: Hook) -> None:
    records = hook.send(
        alert(status="resolved"),
        alert("ModelServingLatencyHigh", fingerprint="0123456789abcdef"),
        alert(fingerprint="fedcba9876543210", model="no_such_model"),
        alert(fingerprint="1111222233334444", model=""),
    )
    assert [r["skip_reason"] for r in records] == ["resolved", "not_a_drift_alert", "unknown_model", "unknown_model"]
    assert hook.airflow.triggered == []
    assert sum(hook.metric(result) for result in ("duplicate", "skipped_cooldown", "skipped_in_flight")) == 0
    assert {e.reason for e in hook.services.audit.query(actor="alertmanager", action="retrain.skip")} == {
        "resolved",
        "not_a_drift_alert",
        "unknown_model",
    }


def test_the_retrains_listing(hook: Hook) -> None:
    hook.send(alert())
    hook.send(alert())
    hook.services.auth.create_user("vera", "viewer", None)
    viewer = {"Authorization": f"Bearer {hook.services.auth.create_token('vera', 't', ttl_days=1).secret}"}
    listed = hook.client.get(f"/api/v1/models/{MODEL}/retrains", headers=viewer)
    assert listed.status_code == 200
    assert [(r["status"], r["skip_reason"]) for r in listed.json()] == [("skipped", "duplicate"), ("triggered", None)]
    assert hook.client.get(f"/api/v1/models/{MODEL}/retrains").status_code == 401
    assert hook.client.get("/api/v1/models/nope/retrains", headers=viewer).status_code == 404


# -- Airflow down --------------------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def test_airflow_down_leaves_the_trigger_pending_and_the_retries_back_off_until_it_is_up(hook: Hook) -> None:
    clock = Clock()
    policy = hook.services.retrain_policy
    policy.clock = clock
    hook.airflow.down = True
    [record] = hook.send(alert())
    assert (record["status"], record["attempts"]) == ("pending", 1)
    assert "unreachable" in record["last_error"]
    assert hook.metric("failed") == 1
    [failed] = hook.services.audit.query(actor="alertmanager", result="failed")
    assert failed.action == "retrain.trigger" and failed.detail["next_attempt_at"]

    # A second alert for the model while the first waits: not a second run.
    assert hook.send(alert(fingerprint="9999888877776666"))[0]["skip_reason"] == "cooldown"

    waits = []
    for _ in range(3):
        assert policy.retry_due() == [], "nothing is due before the backoff has passed"
        [pending] = hook.services.retrains.due(datetime.max.replace(tzinfo=UTC))
        assert pending.next_attempt_at is not None
        waits.append((pending.next_attempt_at - clock.now).total_seconds())
        clock.now = pending.next_attempt_at
        [retried] = policy.retry_due()
        assert retried.status == "pending"
    assert waits == [5.0, 10.0, 20.0], "initial 5 s, doubling"

    hook.airflow.down = False
    clock.now = hook.services.retrains.due(datetime.max.replace(tzinfo=UTC))[0].next_attempt_at or clock.now
    [done] = policy.retry_due()
    assert done.status == "triggered" and done.attempts == 5
    assert [run_id for _, run_id, _ in hook.airflow.triggered] == [record["dag_run_id"]]
    assert hook.metric("failed") == 4 and hook.metric("triggered") == 1
    assert hook.services.audit.query(actor="alertmanager", result="ok")[0].client is None  # the worker's attempt


def test_a_trigger_airflow_never_takes_is_given_up(settings: Settings) -> None:
    hook = make_hook(settings, retry_give_up_s=600, retry_max_s=300)
    clock = Clock()
    hook.services.retrain_policy.clock = clock
    hook.airflow.down = True
    hook.send(alert())
    for _ in range(10):
        clock.now += timedelta(minutes=5)
        hook.services.retrain_policy.retry_due()
    [record] = hook.services.retrains.list(MODEL)
    assert record.status == "failed" and record.next_attempt_at is None
    assert hook.services.retrains.due(clock.now + timedelta(days=1)) == []


def test_a_lost_answer_is_retried_without_a_second_run(hook: Hook) -> None:
    hook.airflow.lose_next_answer = True
    [record] = hook.send(alert())
    assert record["status"] == "pending"
    hook.services.retrain_policy.clock = lambda: datetime.now(UTC) + timedelta(minutes=1)
    [done] = hook.services.retrain_policy.retry_due()
    assert done.status == "triggered" and done.dag_run_id == record["dag_run_id"]
    assert len(hook.airflow.triggered) == 1, "the retry found the run the lost attempt created (409)"


def test_the_worker_in_the_running_app_retries_until_airflow_is_up(settings: Settings) -> None:
    hook = make_hook(settings, retry_initial_s=0.2, retry_max_s=0.4, worker_interval_s=0.1)
    hook.airflow.down = True
    with hook.client:  # runs the lifespan: the retry worker starts
        [record] = hook.send(alert())
        assert record["status"] == "pending"
        # The worker retries while Airflow is down, and the retrain stays pending.
        wait_for(lambda: hook.services.retrains.list(MODEL)[0].attempts >= 2, 10, "the worker's first retry")
        assert hook.services.retrains.list(MODEL)[0].status == "pending"
        hook.airflow.down = False
        triggered = lambda: hook.services.retrains.list(MODEL)[0].status == "triggered"  # noqa: E731
        wait_for(triggered, 10, "the worker to trigger the pending retrain")
    assert len(hook.airflow.triggered) == 1


# -- metrics ------------------------------------------------------------------------------------------------------


def test_the_counter_starts_at_zero_for_every_model_and_result(hook: Hook) -> None:
    text = hook.client.get("/metrics").text
    for result in ("triggered", "skipped_cooldown", "skipped_in_flight", "duplicate", "failed"):
        assert f'mlplatform_retrain_triggers_total{{model="{MODEL}",result="{result}"}} 0.0' in text


def test_an_empty_or_short_configured_token_is_refused_at_startup(settings: Settings) -> None:
    from pydantic import ValidationError

    for value in ("", "short"):
        with pytest.raises(ValidationError, match="at least 16 characters"):
            type(settings.alerts).model_validate({"webhook_token": value})
