"""A rollout inside the model server, in-process: the traffic plan's stable assignment, shadow (the champion
answers, both arms logged), split (each entity answered by its arm, every time), a failing candidate that never costs
an answer, pause and end.  Real estimators, Predictor and parquet prediction log; the registry is the local loader
of tests/unit/test_serving_tasks.py and the online store its table reader (the real servers: tests/integration)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from mlplatform.config import Settings
from mlplatform.predictions.reader import read_prediction_log
from mlplatform.registry.traffic import TrafficPlan
from mlplatform.serving.loading import AliasTarget, LoadedModel
from mlplatform.serving.predictor import Predictor
from mlplatform.serving.task_outputs import TaskScorer
from mlplatform.serving.wire import response_body
from tests.support.fakes.online_features import TableFeatureReader
from tests.unit.test_serving_tasks import KEY, STORED, LocalLoader, make_spec, save, target, training_frame

INPUTS = ["f1", "f2", "size"]


class RolloutLoader(LocalLoader):
    """The local loader with a traffic plan, as the platform would publish it on the registered model."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.plan: TrafficPlan | None = None
        self.broken: set[str] = set()

    def traffic_plan(self) -> TrafficPlan | None:
        return self.plan

    def version_target(self, version: str) -> AliasTarget:
        return AliasTarget(version, None, {})

    def load(self, target: AliasTarget, *, cache: bool = True) -> LoadedModel:
        loaded = super().load(target)
        broken = cast("TaskScorer", Broken(loaded.scorer))
        return replace(loaded, scorer=broken) if target.version in self.broken else loaded


class Broken:
    """A scorer that fails on every call: a candidate with a bug."""

    def __init__(self, inner: Any) -> None:
        self.task, self.classes, self.how = inner.task, inner.classes, inner.how

    def __call__(self, matrix: Any) -> Any:
        raise RuntimeError("candidate bug")


@pytest.fixture()
def table() -> dict[int, dict[str, float]]:
    frame = training_frame(rows=40, seed=3)
    return {
        100 + i: {"f1": float(a), "f2": float(b)} for i, (a, b) in enumerate(zip(frame["f1"], frame["f2"], strict=True))
    }


@pytest.fixture()
def served(settings: Settings, table: dict[int, dict[str, float]], tmp_path: Path) -> tuple[Predictor, RolloutLoader]:
    """Champion version 1 (logistic on f1) and candidate version 2 (logistic on all inputs): different scores."""
    frame = training_frame()
    labels = target("binary", frame)
    champion = LogisticRegression(C=0.01).fit(frame[INPUTS], labels)
    candidate = LogisticRegression(C=10.0).fit(frame[INPUTS], labels)
    spec = make_spec("binary")
    loader = RolloutLoader(settings, spec, TableFeatureReader(KEY, table, STORED))
    loader.versions.update({"1": save(champion, tmp_path / "v1"), "2": save(candidate, tmp_path / "v2")})
    loader.alias_version = "1"
    predictor = Predictor(settings, spec.name, spec=spec, loader=loader, prediction_log=True)
    predictor.start(poll=False)
    return predictor, loader


def rows(table: dict[int, dict[str, float]]) -> list[dict[str, Any]]:
    return [{KEY: key, "size": 3.0} for key in table]


def test_the_plan_round_trips_through_its_tag_and_refuses_what_it_cannot_read() -> None:
    plan = TrafficPlan(7, "12", "split", 0.25)
    assert TrafficPlan.from_tag(plan.to_tag()) == plan
    for raw, problem in [
        ("{", "not JSON"),
        ("[]", "JSON object"),
        ('{"rollout_id": 1}', "lacks or mistypes"),
        ('{"rollout_id": 1, "candidate_version": "x", "mode": "split", "share": 0.1}', "version number"),
        ('{"rollout_id": 1, "candidate_version": "2", "mode": "canary", "share": 0.1}', "shadow or split"),
        ('{"rollout_id": 1, "candidate_version": "2", "mode": "split", "share": 2}', "between 0 and 1"),
    ]:
        with pytest.raises(ValueError, match=problem):
            TrafficPlan.from_tag(raw)


def test_assignment_is_stable_per_entity_near_the_share_and_fresh_per_rollout() -> None:
    plan = TrafficPlan(1, "2", "split", 0.2)
    keys = list(range(20_000))
    chosen = [plan.candidate_answers(key) for key in keys]
    assert chosen == [plan.candidate_answers(key) for key in keys]  # the same every time
    assert abs(sum(chosen) / len(keys) - 0.2) < 0.015
    assert plan.candidate_answers(12345) == plan.candidate_answers("12345")  # an id as number or text: one arm
    other = [TrafficPlan(2, "2", "split", 0.2).candidate_answers(key) for key in keys]
    overlap = sum(a and b for a, b in zip(chosen, other, strict=True)) / max(1, sum(chosen))
    assert 0.1 < overlap < 0.3  # the next rollout draws its candidates afresh (independent: about the share)


def test_shadow_answers_with_the_champion_and_logs_both_arms(
    served: tuple[Predictor, RolloutLoader], table: dict[int, dict[str, float]], settings: Settings
) -> None:
    predictor, loader = served
    before = predictor.predict(rows(table), "plain")
    loader.plan = TrafficPlan(1, "2", "shadow", 0.0)
    predictor.refresh()
    assert predictor.arms is not None and predictor.arms.candidate.version == "2"
    shadowed = predictor.predict(rows(table), "shadowed")
    assert [item.score for item in shadowed.predictions] == [item.score for item in before.predictions]
    assert shadowed.version == "1" and all(item.version is None for item in shadowed.predictions)
    predictor.close()  # drains the shadow thread and the log
    log = read_prediction_log(settings, predictor.name)
    mine = log[log["request_id"] == "shadowed"]
    assert sorted(map(tuple, mine[["model_version", "arm", "shadow"]].drop_duplicates().values.tolist())) == [
        ("1", "champion", False),
        ("2", "candidate", True),
    ]
    assert (mine.groupby("arm").size() == len(table)).all()
    assert (mine["latency_s"] > 0).all()
    champion, candidate = (
        mine[mine["arm"] == arm].sort_values(KEY)["score"].to_numpy() for arm in ("champion", "candidate")
    )
    assert not np.allclose(champion, candidate)  # the candidate's own scores, not a copy


def test_split_answers_each_entity_by_its_arm_every_time(
    served: tuple[Predictor, RolloutLoader], table: dict[int, dict[str, float]], settings: Settings
) -> None:
    predictor, loader = served
    plan = TrafficPlan(3, "2", "split", 0.5)
    loader.plan = plan
    predictor.refresh()
    first = predictor.predict(rows(table), "split-1")
    again = predictor.predict(rows(table), "split-2")
    expected = ["2" if plan.candidate_answers(key) else "1" for key in table]
    assert [item.version for item in first.predictions] == expected == [item.version for item in again.predictions]
    assert {"1", "2"} <= set(expected)
    assert [item.index for item in first.predictions] == list(range(len(table)))
    answer = response_body(first, KEY)
    assert [item["version"] for item in answer["predictions"]] == expected
    predictor.close()
    log = read_prediction_log(settings, predictor.name)
    logged = log[log["request_id"] == "split-1"].set_index(KEY)
    assert [logged.loc[key, "model_version"] for key in table] == expected
    assert not logged["shadow"].any() and set(logged["arm"]) == {"champion", "candidate"}


def test_a_failing_candidate_never_costs_an_answer(
    served: tuple[Predictor, RolloutLoader], table: dict[int, dict[str, float]], settings: Settings
) -> None:
    predictor, loader = served
    loader.broken.add("2")
    loader.plan = TrafficPlan(4, "2", "split", 0.5)
    predictor.refresh()
    result = predictor.predict(rows(table), "broken")
    assert not result.errors and [item.version for item in result.predictions] == ["1"] * len(table)
    predictor.close()
    log = read_prediction_log(settings, predictor.name)
    failures = log[(log["request_id"] == "broken") & log["error"].notna()]
    assert len(failures) == sum(TrafficPlan(4, "2", "split", 0.5).candidate_answers(key) for key in table)
    assert set(failures["arm"]) == {"candidate"} and failures["score"].isna().all()
    assert failures["error"].str.contains("RuntimeError: candidate bug").all()


def test_pause_routes_to_the_champion_and_the_end_of_the_plan_drops_the_candidate(
    served: tuple[Predictor, RolloutLoader], table: dict[int, dict[str, float]], settings: Settings
) -> None:
    predictor, loader = served
    loader.plan = TrafficPlan(5, "2", "split", 0.5, paused=True)
    predictor.refresh()
    assert predictor.arms is not None and not predictor.arms.routing
    paused = predictor.predict(rows(table), "paused")
    assert {item.version for item in paused.predictions} == {None} and paused.version == "1"
    loader.plan = None
    predictor.refresh()
    assert predictor.arms is None
    metrics = predictor.metrics.render().decode()
    assert "mlplatform_serving_rollout_share{" not in metrics
    predictor.close()
    log = read_prediction_log(settings, predictor.name)
    assert set(log.loc[log["request_id"] == "paused", "arm"]) == {"champion"}


def test_a_swap_of_either_arm_mid_rollout_loses_no_answer_or_record(
    served: tuple[Predictor, RolloutLoader], table: dict[int, dict[str, float]], settings: Settings
) -> None:
    predictor, loader = served
    loader.plan = TrafficPlan(6, "2", "shadow", 0.0)
    predictor.refresh()
    answered = 0
    for step in range(12):
        if step == 4:
            loader.plan = TrafficPlan(6, "2", "split", 0.5)  # shadow -> split
            predictor.refresh()
        if step == 8:
            loader.alias_version = "2"  # the champion moves (a promotion) while the plan still runs
            loader.plan = None
            predictor.refresh()
        answered += len(predictor.predict(rows(table), f"swap-{step}").predictions)
    assert answered == 12 * len(table)
    predictor.close()
    log = read_prediction_log(settings, predictor.name)
    answered_rows = log[~log["shadow"] & log["error"].isna()]
    assert len(answered_rows) == answered
    assert len(log[log["shadow"]]) == 4 * len(table)
