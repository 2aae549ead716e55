"""Rollouts through the API and the UI forms, in-process over the platform DB (sqlite) and the fake registry (MLflow
runs as a real server in tests/integration): start, pause, resume, stop, decide, each published as the traffic plan
the model servers follow and audited; refusals name what to do."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.api_world import MODEL, World, logged_in

ROLLOUTS = f"/api/v1/models/{MODEL}/rollouts"


def start(world: World, role: str = "data-scientist", **body: Any) -> Any:
    return world.client.post(ROLLOUTS, json={"candidate": "4", **body}, headers=world.as_role(role))


def test_a_rollout_starts_from_the_spec_policy_and_publishes_its_plan(world: World) -> None:
    answer = start(world, reason="try v4")
    assert answer.status_code == 201, answer.text
    rollout = answer.json()
    assert (rollout["candidate_version"], rollout["champion_version"], rollout["mode"], rollout["state"]) == (
        "4",
        "2",
        "shadow",
        "running",
    )
    assert rollout["policy"]["metric"] == "log_loss" and rollout["policy"]["alpha"] == 0.05
    plan = world.registry.plans[MODEL]
    assert (plan.rollout_id, plan.candidate_version, plan.mode, plan.paused) == (rollout["id"], "4", "shadow", False)
    events = world.audit(action="rollout.start")
    assert events and events[0].to_value == "v4" and events[0].from_value == "v2" and events[0].reason == "try v4"
    listed = world.client.get(ROLLOUTS, headers=world.as_role("viewer")).json()
    assert [item["id"] for item in listed] == [rollout["id"]]


def test_split_overrides_and_the_challenger_alias(world: World) -> None:
    world.registry.move_alias(MODEL, "challenger", "3", actor="pipeline", reason="trained")
    answer = world.client.post(ROLLOUTS, json={"mode": "split", "share": 0.25}, headers=world.as_role("data-scientist"))
    assert answer.status_code == 201, answer.text
    assert (answer.json()["candidate_version"], answer.json()["share"]) == ("3", 0.25)
    assert world.registry.plans[MODEL].share == 0.25


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"candidate": "2"}, 422, "already the champion"),
        ({"candidate": "9"}, 422, "has no version 9"),
        ({"candidate": "nobody"}, 422, "no version of fraud_detector holds the alias 'nobody'"),
        ({"candidate": "4", "share": 0.9}, 422, "share"),
        ({"candidate": "4", "mode": "canary"}, 422, "mode"),
        ({"candidate": "../x"}, 422, "candidate"),
        ({"candidate": "4", "colour": "blue"}, 422, "colour"),
    ],
)
def test_refusals_name_the_reason(world: World, body: dict[str, Any], status: int, words: str) -> None:
    answer = world.client.post(ROLLOUTS, json=body, headers=world.as_role("data-scientist"))
    assert answer.status_code == status and words in answer.text
    assert MODEL not in world.registry.plans


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"min_duration": "2m", "max_duration": "1m"}, "min_duration must be shorter than max_duration"),
        ({"evaluation_interval": "soon"}, "evaluation_interval"),
        ({"colour": "blue"}, "colour: Extra inputs are not permitted"),
        ({"guardrails": {"max_prediction_shift": 2}}, "guardrails.max_prediction_shift"),
    ],
)
def test_policy_overrides_are_validated_like_the_spec(world: World, overrides: dict[str, Any], words: str) -> None:
    """What `mlplatform loop rollout --policy` hands in: a bad override is refused, naming it, and nothing starts."""
    from mlplatform.rollouts.control import RolloutError

    spec = world.services.spec(MODEL)
    with pytest.raises(RolloutError, match=words):
        world.services.rollout_control.start(spec, "4", actor="pytest", overrides=overrides)
    assert MODEL not in world.registry.plans and world.services.rollout_records.open_for(MODEL) is None
    overrides = {"max_duration": "90s", "guardrails": {"max_prediction_shift": 1.0}}
    started = world.services.rollout_control.start(spec, "4", actor="pytest", overrides=overrides)
    assert started.policy["max_duration"] == 90.0 and started.policy["mode"] == spec.rollout.mode
    guardrails = started.policy["guardrails"]  # a section is overridden field by field
    assert (
        guardrails["max_prediction_shift"] == 1.0 and guardrails["min_requests"] == spec.rollout.guardrails.min_requests
    )


def test_one_open_rollout_per_model(world: World) -> None:
    assert start(world).status_code == 201
    again = start(world, candidate="3")
    assert again.status_code == 409 and "already has rollout" in again.json()["detail"]
    assert world.registry.plans[MODEL].candidate_version == "4"


def test_no_champion_no_rollout(world: World) -> None:
    world.registry.aliases[MODEL].pop("champion")
    answer = start(world)
    assert answer.status_code == 422 and "no champion" in answer.json()["detail"]


def test_pause_resume_stop_follow_the_plan_and_are_audited(world: World) -> None:
    rollout = start(world).json()
    base, ds = f"/api/v1/rollouts/{rollout['id']}", world.as_role("data-scientist")
    assert world.client.post(f"{base}/pause", json={"reason": "incident"}, headers=ds).json()["state"] == "paused"
    assert world.registry.plans[MODEL].paused
    assert world.client.post(f"{base}/pause", headers=ds).status_code == 409  # only a running rollout pauses
    assert world.client.post(f"{base}/resume", headers=ds).json()["state"] == "running"
    assert not world.registry.plans[MODEL].paused
    stopped = world.client.post(f"{base}/stop", json={"reason": "enough"}, headers=ds).json()
    assert (stopped["state"], stopped["decision"], stopped["decided_by"]) == ("stopped", "stop", "data_scientist")
    assert MODEL not in world.registry.plans
    assert world.client.post(f"{base}/resume", headers=ds).status_code == 409
    actions = [event.action for event in world.audit(target=f"{MODEL}/rollout/{rollout['id']}")]
    assert sorted(actions) == ["rollout.pause", "rollout.resume", "rollout.start", "rollout.stop"]


def test_a_person_decides_through_the_gate(world: World) -> None:
    rollout = start(world).json()
    decide = f"/api/v1/rollouts/{rollout['id']}/decide"
    body = {"decision": "promote", "reason": "the test says so"}
    assert world.client.post(decide, json=body, headers=world.as_role("data-scientist")).status_code == 403
    answer = world.client.post(decide, json=body, headers=world.as_role("approver"))
    assert answer.status_code == 200, answer.text
    assert (answer.json()["state"], answer.json()["decision"]) == ("promoted", "promote")
    assert world.registry.aliases[MODEL]["champion"] == "4" and MODEL not in world.registry.plans
    moves = world.services.store.alias_history(MODEL, "champion")
    assert moves[-1].to_version == "4" and moves[-1].reason.startswith(f"rollout {rollout['id']}:")


def test_the_gate_refuses_a_worse_candidate_and_the_rollout_stays_open(world: World) -> None:
    rollout = start(world, candidate="3").json()  # roc_auc 0.80 against the champion's 0.95
    answer = world.client.post(
        f"/api/v1/rollouts/{rollout['id']}/decide",
        json={"decision": "promote", "reason": "try"},
        headers=world.as_role("approver"),
    )
    assert answer.status_code == 409 and "promotion gate refuses version 3" in answer.json()["detail"]
    assert world.registry.aliases[MODEL]["champion"] == "2" and world.registry.plans[MODEL].candidate_version == "3"
    refused = world.audit(action="rollout.promote")
    assert refused and refused[0].result == "refused by gate"
    rolled = world.client.post(
        f"/api/v1/rollouts/{rollout['id']}/decide",
        json={"decision": "rollback", "reason": "worse offline"},
        headers=world.as_role("approver"),
    ).json()
    assert rolled["state"] == "rolled_back" and MODEL not in world.registry.plans


def test_reads_need_a_login_and_unknown_rollouts_are_404(world: World) -> None:
    assert world.client.get("/api/v1/rollouts/1").status_code == 401
    assert world.client.get("/api/v1/rollouts/77", headers=world.as_role("viewer")).status_code == 404
    assert world.client.post("/api/v1/rollouts/0/stop", headers=world.as_role("approver")).status_code == 422
    assert start(world, role="viewer").status_code == 403


def test_the_model_page_starts_and_stops_a_rollout(world: World) -> None:
    csrf = logged_in(world, "approver")
    page = world.client.get(f"/models/{MODEL}").text
    assert 'data-testid="rollout-start-form"' in page and "No rollout yet" in page
    started = world.client.post(
        f"/models/{MODEL}/rollouts",
        data={"candidate": "4", "mode": "split", "share": "0.2", "reason": "", "csrf_token": csrf},
        follow_redirects=True,
    )
    assert "Rollout 1 started: v4 in split against v2." in started.text
    assert 'data-testid="rollout-state">running' in started.text and "rollout-decide-form" in started.text
    stopped = world.client.post("/rollouts/1/stop", data={"csrf_token": csrf}, follow_redirects=True)
    assert "Rollout 1 is stopped." in stopped.text and MODEL not in world.registry.plans
    refused = world.client.post("/rollouts/1/stop", data={"csrf_token": csrf}, follow_redirects=True)
    assert "has ended (stopped)" in refused.text
