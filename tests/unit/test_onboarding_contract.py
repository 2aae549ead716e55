"""The data contract of ``models init`` (conversions with notices, every refusal with its message) and the files the
scaffold writes.  Refusals write nothing: each refusal test checks the models and data directories stay empty."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from mlplatform.config import Settings
from mlplatform.onboarding.contract import MIN_LABELLED_ROWS, ContractError, check_tables
from mlplatform.onboarding.scaffold import ScaffoldError, write_model
from mlplatform.specs import load_spec
from tests.support.onboarding import KEY, LABEL, Tables, feature_frame, label_frame, onboarding_settings, write_tables


@pytest.fixture()
def onboard(tmp_path: Path) -> Settings:
    return onboarding_settings(tmp_path / "state")


def test_naive_nanosecond_timestamps_are_converted_with_notices(tmp_path: Path) -> None:
    tables = write_tables(tmp_path)
    data = check_tables([tables.features], tables.labels, entity_key=KEY, label=LABEL)
    column = data.feature_tables[0].frame["event_timestamp"]
    assert str(column.dtype) == "datetime64[us, UTC]"
    assert str(data.labels["event_timestamp"].dtype) == "datetime64[us, UTC]"
    assert "machine_readings.parquet: event_timestamp has no time zone; read as UTC" in data.notices
    assert any("nanosecond precision; converted to microseconds" in notice for notice in data.notices)
    assert data.task == "binary"
    assert data.key_type == "int64"
    assert data.feature_tables[0].features == {
        "sensor_0": "float64",
        "sensor_1": "float64",
        "sensor_2": "float64",
        "sensor_3": "float64",
        "running_hours": "int64",
    }


def test_timezone_option_reads_naive_times_in_that_zone(tmp_path: Path) -> None:
    tables = write_tables(tmp_path)
    data = check_tables([tables.features], tables.labels, entity_key=KEY, label=LABEL, timezone="Europe/Berlin")
    original = pd.read_parquet(tables.features)["event_timestamp"].iloc[0]
    converted = data.feature_tables[0].frame["event_timestamp"].iloc[0]
    assert converted == pd.Timestamp(original).tz_localize("Europe/Berlin").tz_convert("UTC").floor("us")
    assert any("read as Europe/Berlin (--timezone)" in notice for notice in data.notices)


def test_multiclass_and_regression_tasks(tmp_path: Path) -> None:
    features = feature_frame()
    multiclass = write_tables(tmp_path / "m", features, label_frame(features, "multiclass"))
    assert check_tables([multiclass.features], multiclass.labels, entity_key=KEY, label=LABEL).task == "multiclass"
    regression = write_tables(tmp_path / "r", features, label_frame(features, "regression"))
    data = check_tables([regression.features], regression.labels, entity_key=KEY, label=LABEL, task="regression")
    assert data.task == "regression"


def refused(tables: Tables, onboard: Settings, **options: object) -> str:
    with pytest.raises(ContractError) as caught:
        check_tables([tables.features], tables.labels, entity_key=KEY, label=LABEL, **options)  # type: ignore[arg-type]
    assert not onboard.user_models_dir.exists()
    assert not onboard.data_dir.exists()
    return str(caught.value)


def test_string_key_where_another_file_has_integers_is_refused(tmp_path: Path, onboard: Settings) -> None:
    features = feature_frame()
    labels = label_frame(features)
    labels[KEY] = labels[KEY].astype(str)
    message = refused(write_tables(tmp_path, features, labels), onboard)
    assert f"column {KEY!r} (entity key) has different types across files" in message
    assert "machine_readings.parquet: int64, failures.parquet: string" in message
    assert "fix: use the same type" in message


def test_missing_label_column_is_refused(tmp_path: Path, onboard: Settings) -> None:
    tables = write_tables(tmp_path)
    with pytest.raises(ContractError, match=r"failures.parquet: no label column 'broken'.*fix: name the right one"):
        check_tables([tables.features], tables.labels, entity_key=KEY, label="broken")
    assert not onboard.data_dir.exists()


def test_too_few_labelled_rows_are_refused(tmp_path: Path, onboard: Settings) -> None:
    features = feature_frame(entities=MIN_LABELLED_ROWS - 1)
    message = refused(write_tables(tmp_path, features, label_frame(features)), onboard)
    assert f"{MIN_LABELLED_ROWS - 1} labelled rows; a model needs at least {MIN_LABELLED_ROWS}" in message


def test_empty_label_table_is_refused(tmp_path: Path, onboard: Settings) -> None:
    features = feature_frame()
    message = refused(write_tables(tmp_path, features, label_frame(features).head(0)), onboard)
    assert "0 labelled rows" in message


def test_one_class_label_is_refused(tmp_path: Path, onboard: Settings) -> None:
    features = feature_frame()
    labels = label_frame(features).assign(**{LABEL: 1})
    message = refused(write_tables(tmp_path, features, labels), onboard)
    assert f"label column {LABEL!r} has one class only (1); fix: add rows of the other class(es)" in message


def test_multiclass_codes_other_than_zero_to_k_are_refused(tmp_path: Path, onboard: Settings) -> None:
    features = feature_frame()
    labels = label_frame(features, "multiclass")
    labels[LABEL] = labels[LABEL] + 1
    message = refused(write_tables(tmp_path, features, labels), onboard)
    assert "multi-class labels must be the codes 0..2, each present" in message


def test_text_label_is_refused_with_the_fix(tmp_path: Path, onboard: Settings) -> None:
    features = feature_frame()
    labels = label_frame(features)
    labels[LABEL] = labels[LABEL].map({0: "ok", 1: "broken"})
    message = refused(write_tables(tmp_path, features, labels), onboard)
    assert "classification needs integer or boolean class codes (fix: encode the classes as integers" in message


def test_text_feature_is_refused_naming_the_column(tmp_path: Path, onboard: Settings) -> None:
    features = feature_frame().assign(site="north")
    message = refused(write_tables(tmp_path, features, label_frame(feature_frame())), onboard)
    assert "machine_readings.parquet: column 'site' is object; features must be numbers or booleans" in message
    assert "fix: encode text or categories as numbers, or drop the column" in message


def test_null_key_and_missing_timestamp_are_refused(tmp_path: Path, onboard: Settings) -> None:
    features = feature_frame().astype({KEY: "float64"})
    features.loc[0, KEY] = None
    message = refused(write_tables(tmp_path / "a", features, label_frame(feature_frame())), onboard)
    assert f"column {KEY!r} (entity key) has 1 null(s); fix: drop them" in message
    no_time = feature_frame().drop(columns="event_timestamp")
    message = refused(write_tables(tmp_path / "b", no_time, label_frame(feature_frame())), onboard)
    assert "no event timestamp column 'event_timestamp'" in message


def test_binary_label_must_be_zero_and_one(tmp_path: Path, onboard: Settings) -> None:
    features = feature_frame()
    labels = label_frame(features)
    labels[LABEL] = labels[LABEL] + 1
    assert "a binary label must be 0 and 1" in refused(write_tables(tmp_path, features, labels), onboard)


def test_scaffold_writes_spec_features_and_data(tmp_path: Path, onboard: Settings) -> None:
    tables = write_tables(tmp_path)
    data = check_tables([tables.features], tables.labels, entity_key=KEY, label=LABEL)
    scaffold = write_model(onboard, "machines", data, owner="ana")
    assert scaffold.folder == onboard.user_models_dir / "machines"
    spec = load_spec(scaffold.spec)
    assert (spec.task, spec.entity, spec.entity_key, spec.features.service) == ("binary", "machine", KEY, "machines")
    assert spec.estimator.class_path == "sklearn.ensemble.RandomForestClassifier"
    assert spec.label.source == "failures.parquet"
    assert spec.owner == "ana"
    features = yaml.safe_load(scaffold.features.read_text())
    assert features["entities"] == [{"name": "machine", "join_key": KEY, "type": "int64", "description": ""}]
    (view,) = features["views"]
    assert view["name"] == "machines_machine_readings"
    assert view["source"] == "machine_readings.parquet"
    assert view["ttl_days"] == 30
    assert features["services"] == [{"name": "machines", "features": ["machines_machine_readings"]}]
    written = pd.read_parquet(onboard.model_data_dir("machines") / "machine_readings.parquet")
    assert str(written["event_timestamp"].dtype) == "datetime64[us, UTC]"
    assert (onboard.model_data_dir("machines") / "failures.parquet").is_file()


def test_an_existing_model_name_is_refused(tmp_path: Path, onboard: Settings) -> None:
    tables = write_tables(tmp_path)
    data = check_tables([tables.features], tables.labels, entity_key=KEY, label=LABEL)
    write_model(onboard, "machines", data)
    with pytest.raises(ScaffoldError, match="a model named 'machines' already exists"):
        write_model(onboard, "machines", data)
