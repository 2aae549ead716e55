"""Rollouts on both model servers as real processes, against the real MLflow registry (its traffic plan) and the
real prediction log: shadow answers with the champion and logs both arms; a split answers each customer by one arm,
every time; switching modes and moving the champion in the middle of a rollout loses no answer and no record; a
breached guardrail rolls the candidate back within one evaluation interval, and the servers follow."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pandas as pd
import pytest

from mlplatform.predictions.reader import read_prediction_log
from mlplatform.registry.mlflow_registry import CHAMPION, ModelRegistry
from mlplatform.registry.traffic import TrafficPlan
from mlplatform.rollouts.control import RolloutControl
from mlplatform.rollouts.evaluator import RolloutEvaluator
from mlplatform.rollouts.outcomes import outcome_join, prediction_window
from mlplatform.specs import find_spec
from mlplatform.store import PlatformStore
from mlplatform.store.audit import AuditLog
from mlplatform.store.rollouts import RolloutRecords
from mlplatform.waiting import Periodic
from tests.support.serving import KINDS, MODEL, ServedWorld, ServerProcess, serving_settings, start_server
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=KINDS)
def server(
    request: pytest.FixtureRequest, served_world: ServedWorld, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    settings = serving_settings(served_world.settings, tmp_path_factory.mktemp(f"rollout-{request.param}"))
    process = start_server(request.param, settings)
    yield process
    process.terminate()


@pytest.fixture()
def registry(served_world: ServedWorld) -> Iterator[ModelRegistry]:
    """The registry; whatever a test leaves, the plan is removed and version 1 is champion again afterwards."""
    registry = ModelRegistry(served_world.settings)
    yield registry
    registry.publish_traffic_plan(MODEL, None)
    registry.move_alias(MODEL, CHAMPION, served_world.versions[0], actor="pytest", reason="rollout test cleanup")


def following(server: ServerProcess, plan: TrafficPlan | None) -> None:
    """Wait until the server follows ``plan`` (its rollout gauge says so; ``None``: no rollout)."""

    wanted = (
        set()
        if plan is None
        else {f'rollout="{plan.rollout_id}"', f'candidate_version="{plan.candidate_version}"', f'mode="{plan.mode}"'}
    )

    def follows() -> bool:
        metrics = httpx.get(server.url + "/metrics", timeout=10).text
        lines = [line for line in metrics.splitlines() if line.startswith("mlplatform_serving_rollout_share{")]
        if plan is None:
            return not lines
        return any(all(label in line for label in wanted) for line in lines)

    wait_for(follows, 30, f"the {server.kind} server to follow {plan}", interval=0.2)


def logged(server: ServerProcess, prefix: str, rows: int) -> pd.DataFrame:
    """The log's rows of requests whose id starts with ``prefix``, once ``rows`` of them are written."""

    def written() -> tuple[pd.DataFrame] | None:  # in a tuple: a frame has no truth value
        frame = read_prediction_log(server.settings, MODEL)
        mine = frame[frame["request_id"].str.startswith(prefix)]
        return (mine,) if len(mine) >= rows else None

    return wait_for(written, 30, f"{rows} logged rows of {prefix}*", interval=0.2)[0]


def test_shadow_and_split_answer_as_planned_and_log_both_arms(
    server: ServerProcess, served_world: ServedWorld, registry: ModelRegistry
) -> None:
    champion, candidate = served_world.versions
    customers = served_world.customers[:20]
    shadow = TrafficPlan(900, candidate, "shadow", 0.0)
    registry.publish_traffic_plan(MODEL, shadow)
    following(server, shadow)
    with httpx.Client(timeout=30) as client:
        for index, customer in enumerate(customers):
            body = server.predict(client, [{"customer_id": customer, "amount": 10.0}], request_id=f"sh-{index}").json()
            assert body["version"] == champion and "version" not in body["predictions"][0]
    rows = logged(server, "sh-", 2 * len(customers))
    arms = rows.groupby(["arm", "model_version", "shadow"]).size().to_dict()
    assert arms == {("candidate", candidate, True): len(customers), ("champion", champion, False): len(customers)}

    split = TrafficPlan(901, candidate, "split", 0.5)
    registry.publish_traffic_plan(MODEL, split)
    following(server, split)
    expected = [candidate if split.candidate_answers(customer) else champion for customer in customers]
    assert {champion, candidate} <= set(expected)
    entities = [{"customer_id": customer, "amount": 10.0} for customer in customers]
    with httpx.Client(timeout=30) as client:
        for attempt in range(2):  # one customer, one arm: every time
            body = server.predict(client, entities, request_id=f"sp-{attempt}").json()
            assert [item["version"] for item in body["predictions"]] == expected
    rows = logged(server, "sp-", 2 * len(customers))
    assert not rows["shadow"].any()
    by_customer = rows.groupby("customer_id")["model_version"].agg(set).to_dict()
    assert by_customer == {customer: {version} for customer, version in zip(customers, expected, strict=True)}


def test_a_swap_in_the_middle_of_a_rollout_loses_nothing(
    server: ServerProcess, served_world: ServedWorld, registry: ModelRegistry
) -> None:
    """Under load: a shadow starts, becomes a split, the champion moves (a promotion) and the plan ends."""
    candidate = served_world.versions[1]
    answered: list[str] = []
    failures: list[str] = []
    stop = threading.Event()

    def client_loop() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                request_id = f"sw-{len(answered) + len(failures)}"
                entity = {"customer_id": served_world.customers[len(answered) % 10], "amount": 3.0}
                response = server.predict(client, [entity], request_id=request_id)
                if response.status_code == 200 and response.json()["predictions"]:
                    answered.append(request_id)
                else:
                    failures.append(f"{response.status_code}: {response.text}")
                time.sleep(0.01)  # about 100 requests/s

    thread = threading.Thread(target=client_loop)
    thread.start()
    try:
        for plan in (TrafficPlan(910, candidate, "shadow", 0.0), TrafficPlan(910, candidate, "split", 0.5)):
            registry.publish_traffic_plan(MODEL, plan)
            following(server, plan)
        registry.move_alias(MODEL, CHAMPION, candidate, actor="pytest", reason="promoted mid-rollout")
        registry.publish_traffic_plan(MODEL, None)
        following(server, None)
        wait_for(lambda: len(answered) > 50, 30, "answers after the swap", interval=0.1)
    finally:
        stop.set()
        thread.join(30)
    assert failures == []

    def served() -> list[str] | None:  # the answered rows (not the shadow ones), once all may be written
        frame = read_prediction_log(server.settings, MODEL)
        mine = frame[frame["request_id"].str.startswith("sw-") & ~frame["shadow"] & frame["error"].isna()]
        return sorted(mine["request_id"]) if len(mine) >= len(answered) else None

    assert wait_for(served, 30, "every answer in the log", interval=0.2) == sorted(answered)  # once each, none lost


def test_a_breached_guardrail_rolls_back_within_one_evaluation_interval(
    server: ServerProcess, served_world: ServedWorld, registry: ModelRegistry
) -> None:
    settings = served_world.settings
    store = PlatformStore.connect(settings.db_url)
    records = RolloutRecords(store)
    control = RolloutControl(records, registry, AuditLog(store))
    spec = find_spec(settings.model_roots, MODEL)
    rollout = control.start(spec, served_world.versions[1], actor="pytest", overrides={"mode": "shadow"})
    interval = 3.0
    guardrails = {"max_prediction_shift": 0.001, "min_requests": 10}  # any difference between the versions breaches
    records.change(rollout.id, policy={**rollout.policy, "evaluation_interval": interval, "guardrails": guardrails})
    evaluator = RolloutEvaluator(
        records, control, lambda name: spec, prediction_window(server.settings), outcome_join(store)
    )
    worker = Periodic("rollout-evaluator", evaluator.tick, 0.5)
    worker.start()
    try:
        plan = TrafficPlan(rollout.id, served_world.versions[1], "shadow", rollout.share)
        following(server, plan)
        with httpx.Client(timeout=30) as client:
            entities = [{"customer_id": customer, "amount": 7.0} for customer in served_world.customers[:12]]
            assert server.predict(client, entities, request_id="gr-0").status_code == 200
        evidence_at = datetime.now(UTC)
        logged(server, "gr-", 24)
        ended = wait_for(
            lambda: (lambda current: current if current and not current.open else None)(records.get(rollout.id)),
            30,
            "the evaluator to end the rollout",
            interval=0.1,
        )
        assert ended.state == "rolled_back" and "prediction_shift" in (ended.decision_reason or "")
        assert ended.ended_at is not None
        assert (ended.ended_at - evidence_at).total_seconds() < interval + 2 * settings.serving.log_flush_interval_s + 1
        following(server, None)  # the servers drop the candidate at their next poll
    finally:
        worker.stop()
        store.dispose()
