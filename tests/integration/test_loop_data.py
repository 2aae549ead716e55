"""What the loop and `traffic` read and write for any model, against real Feast definitions and parquet files:
requests sampled from the feature store's entity ids and the label table, and the ``--drifted`` table written over
the matching feature table and put back.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mlplatform.config import Settings
from mlplatform.loop.drifted import DriftedTable, DriftedTableError
from mlplatform.loop.traffic import NoRequestsError, feature_sources, sample_requests
from mlplatform.specs import ModelSpec, find_spec
from tests.support.environment import REPO_ROOT
from tests.support.serving import labels_in_model_dir
from tests.support.world import build_world, world_settings

pytestmark = pytest.mark.integration
DEMO = "fraud_detector"


@pytest.fixture(scope="module")
def data_world(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The demo's data and applied Feast definitions (no MLflow: nothing here trains)."""
    settings = world_settings(tmp_path_factory.mktemp("loop-data") / "state")
    build_world(settings)
    labels_in_model_dir(settings, DEMO)
    return settings


def _copy(settings: Settings, tmp_path: Path, name: str, **label: object) -> tuple[Settings, ModelSpec]:
    """The demo's spec under another name (its features), with label settings changed."""
    spec = yaml.safe_load((REPO_ROOT / "pipelines" / "models" / DEMO / "spec.yaml").read_text())
    spec["name"] = name
    spec["label"].update(label)
    (tmp_path / "models" / name).mkdir(parents=True)
    (tmp_path / "models" / name / "spec.yaml").write_text(yaml.safe_dump(spec))
    copied = settings.model_copy(update={"models_dir": tmp_path / "models"})
    return copied, find_spec(copied.model_roots, name)


def _profile(settings: Settings, spec: ModelSpec) -> Path:
    [path] = [path for path, _ in feature_sources(settings, spec) if path.name == "customer_profile.parquet"]
    return path


def _known_ids(settings: Settings, spec: ModelSpec) -> set[int]:
    known: set[int] = set()
    for path, _ in feature_sources(settings, spec):
        known |= set(pd.read_parquet(path, columns=[spec.entity_key])[spec.entity_key].tolist())
    return known


def test_requests_are_the_latest_labelled_events_each_with_its_own_request_values(data_world: Settings) -> None:
    spec = find_spec(data_world.model_roots, DEMO)
    requests = sample_requests(data_world, spec, 30)
    assert len(requests) == 30 and all(set(request) == {"customer_id", "amount"} for request in requests)
    known = _known_ids(data_world, spec)
    assert all(type(r["customer_id"]) is int and r["customer_id"] in known for r in requests)
    labels = pd.read_parquet(data_world.model_data_dir(DEMO) / spec.label.source)
    latest = labels.sort_values("event_timestamp", kind="stable").tail(30)[["customer_id", "amount"]].to_dict("records")
    assert requests == latest


def test_events_of_entities_the_feature_store_lacks_are_not_sent(data_world: Settings, tmp_path: Path) -> None:
    settings, spec = _copy(data_world, tmp_path, "unknown_ids")
    labels = pd.read_parquet(data_world.model_data_dir(DEMO) / spec.label.source)
    latest = labels.sort_values("event_timestamp", kind="stable").tail(10)
    unknown = latest.tail(4).assign(customer_id=-1)  # the newest four events, of an entity no source holds
    table = pd.concat([labels.drop(latest.tail(4).index), unknown])
    settings.model_data_dir("unknown_ids").mkdir(parents=True)
    table.to_parquet(settings.model_data_dir("unknown_ids") / spec.label.source)
    requests = sample_requests(settings, spec, 6)
    assert requests == latest.head(6)[["customer_id", "amount"]].to_dict("records")


def test_a_model_without_request_columns_gets_entity_ids_only(data_world: Settings, tmp_path: Path) -> None:
    settings, spec = _copy(data_world, tmp_path, "keys_only", request_columns=[])
    requests = sample_requests(settings, spec, 5)
    assert [set(request) for request in requests] == [{"customer_id"}] * 5
    assert {request["customer_id"] for request in requests} <= _known_ids(settings, spec)


def test_request_values_need_the_label_table(data_world: Settings, tmp_path: Path) -> None:
    settings, spec = _copy(data_world, tmp_path, "no_labels")
    with pytest.raises(NoRequestsError) as refused:
        sample_requests(settings, spec, 5)
    expected = settings.model_data_dir("no_labels") / "transactions.parquet"
    assert str(refused.value) == (
        f"no_labels takes request-time values (amount) and they are sampled from its label table, but {expected} "
        "does not exist; write it (spec: label.source)"
    )


@pytest.fixture()
def profile_restored(data_world: Settings) -> Iterator[Path]:
    """The demo's profile table, as it was after the test (the world is shared by this module's tests)."""
    path = _profile(data_world, find_spec(data_world.model_roots, DEMO))
    original = path.read_bytes()
    yield path
    path.write_bytes(original)
    for leftover in path.parent.glob(".customer_profile.before-drift.*"):
        leftover.unlink()


def test_the_drifted_table_is_appended_then_put_back(
    data_world: Settings, profile_restored: Path, tmp_path: Path
) -> None:
    spec = find_spec(data_world.model_roots, DEMO)
    original = pd.read_parquet(profile_restored)
    drifted = original.tail(20).copy()
    drifted["credit_limit"] = drifted["credit_limit"] * 3
    drifted["event_timestamp"] = drifted["event_timestamp"].max() + timedelta(days=1)
    drifted["event_timestamp"] = drifted["event_timestamp"].dt.tz_localize(None)  # naive, as pandas writes it
    drifted = drifted[list(reversed(drifted.columns))]  # the same columns in another order
    drifted.to_parquet(tmp_path / "drifted.parquet")
    table = DriftedTable(data_world, spec, tmp_path / "drifted.parquet")
    end = datetime.now(UTC)

    written = table(data_world.data_dir, end=end, drift_after=end - timedelta(days=1))
    after = pd.read_parquet(profile_restored)
    assert written.rows == len(after) == len(original) + 20
    assert after.tail(20)["credit_limit"].tolist() == (original.tail(20)["credit_limit"] * 3).tolist()
    assert str(after["event_timestamp"].dtype) == str(original["event_timestamp"].dtype)
    assert written.start == original["event_timestamp"].min().to_pydatetime()

    baseline = table(data_world.data_dir, end=end, drift_after=None)
    assert baseline.rows == len(original)
    pd.testing.assert_frame_equal(pd.read_parquet(profile_restored), original)

    newer = original.head(10)
    newer.to_parquet(profile_restored, index=False)  # the user writes new data: it becomes the baseline
    assert table(data_world.data_dir, end=end, drift_after=None).rows == 10


def test_a_drifted_table_matching_no_feature_table_is_refused(data_world: Settings, tmp_path: Path) -> None:
    spec = find_spec(data_world.model_roots, DEMO)
    drifted = tmp_path / "drifted.parquet"
    pd.DataFrame({"customer_id": [1], "credit_limit": [5.0]}).to_parquet(drifted)
    with pytest.raises(DriftedTableError) as refused:
        DriftedTable(data_world, spec, drifted)
    message = str(refused.value)
    assert message.startswith(f"--drifted {drifted} has columns ['customer_id', 'credit_limit'], which match none of")
    assert "customer_profile.parquet" in message and "transaction_stats.parquet" in message
    assert message.endswith("give it the same columns as the table it drifts")
