"""Late labels: files checked before anything is stored, each label stored once, joined to the prediction it
labels (by request id, or by entity and time within the tolerance), and the online quality against hand-computed
values; the CLI and the API over the same operation."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mlplatform.cli.main import app
from mlplatform.monitoring.outcomes import (
    LabelError,
    binary_quality,
    calibration_error,
    join_outcomes,
    normalise_labels,
    online_quality,
    read_label_file,
    regression_quality,
    roc_auc,
)
from mlplatform.specs import ModelSpec
from mlplatform.store.outcomes import OutcomeRecords
from tests.support.api_world import MODEL, World
from tests.support.contracts.rollouts import check_rollout_contract

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
TOLERANCE = timedelta(minutes=5)


def spec(task: str = "binary") -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "name": "churn",
            "task": task,
            "entity": "customer",
            "entity_key": "customer_id",
            "features": {"service": "s"},
            "label": {"source": "l.parquet", "column": "is_fraud"},
            "estimator": {"class_path": "sklearn.linear_model.LogisticRegression"},
            "metrics": {"primary": "rmse"} if task == "regression" else {},
        }
    )


def predictions() -> pd.DataFrame:
    """Three requests: r1 (customer 1, both arms: a shadow), r2 (customer 2 at T0+1h), r3 (customer 1 at T0+2h)."""
    rows = [
        ("r1", T0, "1", "champion", False, 1, 0.8, 1),
        ("r1", T0, "2", "candidate", True, 1, 0.9, 1),
        ("r2", T0 + timedelta(hours=1), "1", "champion", False, 2, 0.3, 0),
        ("r3", T0 + timedelta(hours=2), "1", "champion", False, 1, 0.4, 0),
    ]
    frame = pd.DataFrame(
        rows, columns=["request_id", "timestamp", "model_version", "arm", "shadow", "customer_id", "score", "label"]
    )
    return frame.assign(error=None)


def labels(rows: list[tuple[object, object, object, float]]) -> pd.DataFrame:
    """(entity, request id, event time, label) rows, normalised as the readers return them."""
    frame = pd.DataFrame(rows, columns=["entity_value", "request_id", "event_ts", "label"])
    frame["event_ts"] = pd.to_datetime(frame["event_ts"], utc=True)
    return frame.assign(entity_value=frame["entity_value"].astype(str))


def test_a_request_id_label_joins_both_arms_of_a_shadow() -> None:
    result = join_outcomes(predictions(), labels([("1", "r1", None, 1.0)]), "customer_id", TOLERANCE)
    assert sorted(result.frame["arm"]) == ["candidate", "champion"]
    assert set(result.frame["outcome"]) == {1.0} and set(result.frame["label"]) == {1}
    assert result.counts == {"labels": 1, "matched": 1, "unknown": 0, "before_prediction": 0}


def test_entity_and_time_join_the_nearest_request_within_the_tolerance() -> None:
    frame = labels(
        [
            (1, None, T0 + timedelta(hours=2, minutes=3), 1.0),  # r3, three minutes of skew
            (2, None, T0 + timedelta(hours=1, minutes=-2), 0.0),  # r2
            (1, None, T0 + timedelta(hours=1), 1.0),  # customer 1 had no request near T0+1h
            (1, None, T0 - timedelta(hours=3), 0.0),  # before customer 1's first prediction
            (9, "r1", None, 1.0),  # an unknown entity of a known request
            (1, "r404", None, 1.0),  # an unknown request
        ]
    )
    result = join_outcomes(predictions(), frame, "customer_id", TOLERANCE)
    joined = result.frame.sort_values("request_id")
    assert joined["request_id"].tolist() == ["r2", "r3"] and joined["outcome"].tolist() == [0.0, 1.0]
    assert result.counts == {"labels": 6, "matched": 2, "unknown": 3, "before_prediction": 1}


def test_failures_are_never_joined() -> None:
    logged = predictions()
    logged.loc[1, ["score", "error"]] = [None, "RuntimeError: bug"]
    result = join_outcomes(logged, labels([("1", "r1", None, 1.0)]), "customer_id", TOLERANCE)
    assert result.frame["arm"].tolist() == ["champion"]


def test_quality_by_hand() -> None:
    probability, outcome = np.array([0.9, 0.6, 0.4, 0.2]), np.array([1.0, 0.0, 1.0, 0.0])
    quality = binary_quality(probability, outcome, threshold=0.5)
    assert quality["log_loss"] == pytest.approx(-(math.log(0.9) + math.log(0.4) + math.log(0.4) + math.log(0.8)) / 4)
    assert quality["brier"] == pytest.approx((0.01 + 0.36 + 0.36 + 0.04) / 4)
    assert quality["roc_auc"] == pytest.approx(0.75)  # 3 of the 4 positive-negative pairs are ordered right
    assert (quality["precision"], quality["recall"], quality["positive_rate"]) == (0.5, 0.5, 0.5)
    # bins 9, 6, 4, 2 each hold one prediction: the mean gap is |0.9-1|, |0.6-0|, |0.4-1|, |0.2-0|
    assert quality["calibration_error"] == pytest.approx((0.1 + 0.6 + 0.6 + 0.2) / 4)
    assert roc_auc(np.array([0.1, 0.2]), np.array([True, True])) is None
    assert calibration_error(np.array([0.25, 0.25]), np.array([0.0, 1.0])) == pytest.approx(0.25)
    assert regression_quality(np.array([1.0, 3.0]), np.array([2.0, 0.0])) == {
        "mae": 2.0,
        "rmse": pytest.approx(math.sqrt(5)),
    }
    joined = join_outcomes(
        predictions(), labels([("1", "r1", None, 1.0), ("2", "r2", None, 1.0)]), "customer_id", TOLERANCE
    )
    per_arm = {(item["model_version"], item["arm"]): item for item in online_quality(joined.frame, "binary", 0.5)}
    assert per_arm[("1", "champion")]["labelled"] == 2 and per_arm[("2", "candidate")]["labelled"] == 1
    assert per_arm[("2", "candidate")]["metrics"]["log_loss"] == pytest.approx(-math.log(0.9))


@pytest.mark.parametrize(
    ("frame", "words"),
    [
        (pd.DataFrame({"customer_id": [1], "request_id": ["r"]}), "missing column(s) ['is_fraud']"),
        (pd.DataFrame({"customer_id": [1], "is_fraud": [1]}), "need a 'request_id' or a 'event_timestamp' column"),
        (
            pd.DataFrame({"customer_id": [1, 2], "is_fraud": [1, 2], "request_id": ["a", "b"]}),
            "binary labels are 0 or 1 (rows [1])",
        ),
        (
            pd.DataFrame({"customer_id": [1, None], "is_fraud": [1, 0], "request_id": ["a", "b"]}),
            "the entity key is missing (rows [1])",
        ),
        (pd.DataFrame({"customer_id": [1.5], "is_fraud": [1], "request_id": ["a"]}), "whole numbers or text"),
        (pd.DataFrame({"customer_id": [1], "is_fraud": [1], "request_id": ["x" * 65]}), "at most 64 characters"),
        (pd.DataFrame({"customer_id": [1], "is_fraud": [1], "event_timestamp": ["yesterday"]}), "not a timestamp"),
        (
            pd.DataFrame({"customer_id": [1], "is_fraud": [1], "request_id": [None], "event_timestamp": [None]}),
            "needs a request id or an event time",
        ),
        (pd.DataFrame({"customer_id": [1], "is_fraud": [math.inf], "request_id": ["a"]}), "finite numbers"),
    ],
)
def test_bad_labels_are_refused_naming_column_and_rows(frame: pd.DataFrame, words: str) -> None:
    with pytest.raises(LabelError) as raised:
        normalise_labels(frame, spec(), "labels.csv")
    assert raised.value.args[0].startswith("labels.csv: ") and words in str(raised.value)


def test_files_are_read_and_times_taken_as_utc(tmp_path: Path) -> None:
    path = tmp_path / "chargebacks.csv"
    path.write_text("customer_id,is_fraud,event_timestamp\n7,1,2026-12-01 12:00:00\n8,0,2026-12-01T13:00:00+01:00\n")
    frame = read_label_file(path, spec())
    assert frame["entity_value"].tolist() == ["7", "8"]
    assert frame["event_ts"].tolist() == [pd.Timestamp("2026-12-01 12:00", tz="UTC")] * 2
    with pytest.raises(LabelError, match=r"must be a \.parquet or \.csv"):
        read_label_file(tmp_path / "labels.json", spec())


def test_each_label_is_stored_once_and_contradictions_are_reported(world: World) -> None:
    records = OutcomeRecords(world.services.store)
    first = labels([("1", "r1", None, 1.0), ("2", None, T0, 0.0), ("2", None, T0, 0.0)])
    assert records.add("m", first, "a.csv") == records.add("m", first.iloc[:0], "none").__class__(2, 1, [])
    again = records.add("m", labels([("1", "r1", None, 1.0), ("2", None, T0, 1.0), ("3", "r3", None, 0.0)]), "b.csv")
    assert (again.inserted, again.duplicates) == (1, 1)
    assert again.conflicts == [f"entity 2 at {T0}: stored 0, got 1"]
    stored = records.labels("m").sort_values("entity_value")
    assert stored["label"].tolist() == [1.0, 0.0, 0.0]  # the contradiction was not applied


def test_the_cli_ingests_a_file_through_the_api(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "labels.parquet"
    pd.DataFrame({"customer_id": [1, 2], "is_fraud": [1, 0], "request_id": ["r1", "r2"]}).to_parquet(path)
    answer = world.client.post(
        f"/api/v1/models/{MODEL}/labels",
        json={"labels": [{"customer_id": 1, "is_fraud": 1, "request_id": "r1"}], "source": "feed"},
        headers=world.as_role("data-scientist"),
    )
    assert answer.status_code == 200 and answer.json()["inserted"] == 1
    assert answer.json()["joined"]["labels"] >= 1  # measured after this (single) request
    deferred = world.client.post(
        f"/api/v1/models/{MODEL}/labels",
        json={"labels": [{"customer_id": 3, "is_fraud": 0, "request_id": "r3"}], "measure_quality": False},
        headers=world.as_role("data-scientist"),
    )
    assert deferred.status_code == 200 and (deferred.json()["joined"], deferred.json()["quality"]) == ({}, [])
    events = world.audit(action="outcomes.ingest")
    assert events and events[0].detail == {"inserted": 1, "duplicates": 0, "conflicts": 0}
    assert (
        world.client.post(
            f"/api/v1/models/{MODEL}/labels",
            json={"labels": [{"customer_id": 1}]},
            headers=world.as_role("data-scientist"),
        ).status_code
        == 422
    )
    assert (
        world.client.post(
            f"/api/v1/models/{MODEL}/labels",
            json={"labels": [{"customer_id": 1, "is_fraud": 1, "request_id": "r"}]},
            headers=world.as_role("viewer"),
        ).status_code
        == 403
    )
    monkeypatch.setenv("MLP_STATE_DIR", str(world.services.settings.state_dir))
    result = CliRunner().invoke(app, ["labels", "ingest", MODEL, str(path)])
    assert result.exit_code == 0, result.output
    assert "labels.parquet: 1 labels stored, 1 duplicates skipped, 0 conflicts" in result.output


def test_rollout_and_outcome_tables_on_sqlite(tmp_path: Path) -> None:
    check_rollout_contract(f"sqlite:///{tmp_path / 'platform.db'}")
