"""The rollout evaluator end to end in-process: predictions in the real (parquet) prediction log, late labels in the
platform DB, the API's evaluate call, and what follows: a promotion through the gate, a rollback on a breached
guardrail, a decision left to a person, a shadow that becomes a split.  The registry is the fake of the API world."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from mlplatform.predictions.records import PredictionRecord
from mlplatform.predictions.writer import open_prediction_log
from mlplatform.store.outcomes import OutcomeRecords
from tests.support.api_world import MODEL, World, logged_in

ENTITIES = 400


def start(world: World, **policy: Any) -> int:
    """A rollout of v4 against champion v2, its stored policy adjusted for the test."""
    answer = world.client.post(
        f"/api/v1/models/{MODEL}/rollouts", json={"candidate": "4"}, headers=world.as_role("data-scientist")
    )
    assert answer.status_code == 201, answer.text
    rollout = answer.json()
    records = world.services.rollout_records
    records.change(rollout["id"], policy={**rollout["policy"], **policy})
    return int(rollout["id"])


def serve(world: World, *, mode: str = "shadow", candidate_quality: float = 0.3, failures: int = 0) -> pd.DataFrame:
    """Log what a server would have: both arms in shadow (or one arm per entity in a split) for ``ENTITIES``
    customers; the candidate's probabilities are ``candidate_quality`` of the way from the champion's to the truth.
    Returns the truth (customer, request id, outcome)."""
    rng = np.random.default_rng(5)
    truth = rng.random(ENTITIES) < 0.3
    champion = np.clip(np.where(truth, 0.55, 0.45) + rng.normal(0, 0.25, ENTITIES), 0.01, 0.99)
    candidate = np.clip(champion + candidate_quality * (truth.astype(float) - champion), 0.01, 0.99)
    now = datetime.now(UTC)
    records = []
    for index in range(ENTITIES):
        arms = [("2", "champion", champion[index]), ("4", "candidate", candidate[index])]
        if mode == "split":
            arms = [arms[index % 2]]
        for version, arm, score in arms:
            failed = arm == "candidate" and index < failures
            records.append(
                PredictionRecord(
                    request_id=f"r{index}",
                    timestamp=now,
                    model_name=MODEL,
                    entity={"customer_id": 1000 + index},
                    features={"amount": 1.0},
                    latency_s=0.001,
                    model_version=version,
                    arm=arm,
                    shadow=mode == "shadow" and arm == "candidate",
                    score=None if failed else float(score),
                    label=None if failed else int(score >= 0.5),
                    error="RuntimeError: candidate bug" if failed else None,
                )
            )
    log = open_prediction_log(world.services.settings)
    log.submit(records)
    log.close()
    return pd.DataFrame(
        {
            "customer_id": range(1000, 1000 + ENTITIES),
            "request_id": [f"r{i}" for i in range(ENTITIES)],
            "is_fraud": truth.astype(int),
        }
    )


def label(world: World, truth: pd.DataFrame) -> None:
    labels = pd.DataFrame(
        {
            "entity_value": truth["customer_id"].astype(str),
            "request_id": truth["request_id"],
            "event_ts": pd.NaT,
            "label": truth["is_fraud"].astype(float),
        }
    )
    result = OutcomeRecords(world.services.store).add(MODEL, labels, "test")
    assert result.inserted == ENTITIES


def evaluate(world: World, rollout_id: int) -> dict[str, Any]:
    answer = world.client.post(f"/api/v1/rollouts/{rollout_id}/evaluate", headers=world.as_role("data-scientist"))
    assert answer.status_code == 200, answer.text
    detail: dict[str, Any] = answer.json()
    return detail


def test_a_better_candidate_in_shadow_is_promoted_through_the_gate(world: World) -> None:
    rollout = start(world, min_effect=0.05)
    label(world, serve(world))
    detail = evaluate(world, rollout)
    latest = detail["evaluations"][-1]
    assert latest["verdict"] == "promote", latest["reason"]
    assert latest["detail"]["design"] == "paired" and latest["champion_samples"] == ENTITIES
    assert latest["lower"] > 0 and latest["estimate"] > latest["lower"]
    arms = {arm["arm"]: arm for arm in latest["detail"]["arms"]}
    assert arms["candidate"]["mean_loss"] < arms["champion"]["mean_loss"]
    assert arms["champion"]["labelled"] == arms["candidate"]["labelled"] == ENTITIES
    assert (detail["state"], detail["decision"], detail["decided_by"]) == ("promoted", "promote", "rollout-evaluator")
    assert world.registry.aliases[MODEL]["champion"] == "4" and MODEL not in world.registry.plans
    promoted = world.audit(action="rollout.promote")
    assert promoted and promoted[0].actor == "rollout-evaluator" and "test" in promoted[0].detail
    logged_in(world, "viewer")
    page = world.client.get(f"/models/{MODEL}").text
    assert 'data-testid="rollout-state">promoted' in page and "the candidate&#39;s loss is lower" in page
    assert 'data-plotly="chart-rollout-difference"' in page and 'data-plotly="chart-rollout-arms"' in page


def test_a_failing_candidate_is_rolled_back_by_the_guardrail_before_any_label(world: World) -> None:
    rollout = start(world)
    serve(world, failures=40)  # 10 % of its entities fail; the champion none
    detail = evaluate(world, rollout)
    latest = detail["evaluations"][-1]
    assert latest["verdict"] == "breach" and "error_ratio" in latest["reason"]
    assert (detail["state"], detail["decision"]) == ("rolled_back", "rollback")
    assert world.registry.aliases[MODEL]["champion"] == "2" and MODEL not in world.registry.plans
    evidence = world.audit(action="rollout.rollback")[0].detail
    assert any(check["name"] == "error_ratio" and check["breached"] for check in evidence["guardrails"])


def test_manual_decisions_wait_for_a_person_with_the_recommendation(world: World) -> None:
    rollout = start(world, decision="manual", min_effect=0.05, mode="split", share=0.5)
    label(world, serve(world, mode="split"))
    detail = evaluate(world, rollout)
    assert detail["evaluations"][-1]["detail"]["design"] == "independent"
    assert (detail["state"], detail["recommendation"]) == ("awaiting_decision", "promote")
    assert world.registry.plans[MODEL].candidate_version == "4"  # traffic stays as it was meanwhile
    again = evaluate(world, rollout)  # evaluations go on; the state does not change twice
    assert again["state"] == "awaiting_decision" and len(again["evaluations"]) == 2
    assert len(world.audit(action="rollout.await_decision")) == 1


def test_without_labels_a_shadow_decides_on_guardrails_only_and_says_so(world: World) -> None:
    rollout = start(world)
    serve(world)
    running = evaluate(world, rollout)
    assert running["state"] == "running"
    assert "no labelled outcomes yet: deciding on guardrails only" in running["evaluations"][-1]["reason"]
    world.services.rollout_records.change(rollout, policy={**running["policy"], "max_duration": 0.001})
    ended = evaluate(world, rollout)
    assert ended["evaluations"][-1]["verdict"] == "no_outcomes"
    assert ended["state"] == "awaiting_decision" and ended["recommendation"] == "no_outcomes"


def test_a_shadow_with_split_after_becomes_a_split_once_guardrails_hold(world: World) -> None:
    rollout = start(world, split_after=0.0)
    serve(world)
    detail = evaluate(world, rollout)
    assert (detail["state"], detail["mode"]) == ("running", "split")
    assert world.registry.plans[MODEL].mode == "split"
    assert world.audit(action="rollout.split")


def test_the_worker_evaluates_due_rollouts_once(world: World) -> None:
    rollout = start(world)
    serve(world)
    evaluator = world.services.rollout_evaluator
    assert evaluator.tick() == 1
    assert evaluator.tick() == 0  # the next evaluation is an interval away (claimed)
    assert len(world.services.rollout_records.evaluations(rollout)) == 1
