"""Several models' declarative features in one real Feast store (sqlite online, DuckDB offline), driven through
the CLI: apply, materialize (history older than the TTL, row counts, empty views), list and get."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner, Result

from mlplatform.cli.main import app
from mlplatform.config import Settings, get_settings
from tests.support.environment import REPO_ROOT

pytestmark = pytest.mark.integration

runner = CliRunner()
END = datetime(2025, 1, 1, tzinfo=UTC)
OLD = datetime(2020, 1, 1, tzinfo=UTC)
"""The clinic's visits are five years older than END: far outside the view's one-day TTL."""
LATER = datetime(2026, 1, 1, tzinfo=UTC)

CLINIC = {
    "owner": "clinic-ml",
    "entities": [{"name": "patient", "join_key": "patient_id", "type": "int64"}],
    "views": [
        {
            "name": "vitals",
            "entity": "patient",
            "source": "vitals.parquet",
            "ttl_days": 1,
            "features": {"bmi": "float64", "smoker": "bool"},
        }
    ],
    "services": [{"name": "clinic_v1", "features": ["vitals", "dosage"]}],
}
CLINIC_CODE = """
import inspect
from feast import Field, RequestSource
from feast.on_demand_feature_view import OnDemandFeatureView
from feast.types import Float64


def per_dose(inputs):
    return {"bmi_per_dose": [None if b is None or not d else b / d for b, d in zip(inputs["bmi"], inputs["dose"])]}


def build_definitions(views, data_dir):
    request = RequestSource(name="dose_request", schema=[Field(name="dose", dtype=Float64)])
    dosage = OnDemandFeatureView(
        name="dosage",
        sources=[views["vitals"], request],
        schema=[Field(name="bmi_per_dose", dtype=Float64)],
        udf=per_dose,
        udf_string=inspect.getsource(per_dose),
        mode="python",
    )
    return [request, dosage]
"""
SHOP = {
    "entities": [{"name": "store", "join_key": "store_id", "type": "string"}],
    "views": [
        {
            "name": "sales",
            "entity": "store",
            "source": "sales.parquet",
            "ttl_days": 7,
            "features": {"revenue": "float64"},
        },
        {
            "name": "returns",
            "entity": "store",
            "source": "returns.parquet",
            "ttl_days": 7,
            "features": {"rate": "float64"},
        },
        {
            "name": "audits",
            "entity": "store",
            "source": "missing.parquet",
            "ttl_days": 7,
            "features": {"score": "int64"},
        },
    ],
}


def _write_model(root: Path, name: str, features: Mapping[str, object], code: str | None = None) -> None:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "spec.yaml").write_text("# features only\n")
    (folder / "features.yaml").write_text(yaml.safe_dump(dict(features), sort_keys=False))
    if code:
        (folder / "features.py").write_text(code)


def _table(path: Path, key: str, keys: list[object], start: datetime, **columns: list[object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    times = pd.Series([start + timedelta(days=i) for i in range(len(keys))]).astype("datetime64[us, UTC]")
    pd.DataFrame({key: keys, "event_timestamp": times, **columns}).to_parquet(path, index=False)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Two models (clinic: int keys, an on-demand view in features.py; shop: string keys, an empty and a missing
    source) next to the bundled fraud model, whose data is absent; the CLI reads the same settings from MLP_*."""
    tmp = tmp_path_factory.mktemp("models_world")
    models, data = tmp / "models", tmp / "data"
    _write_model(models, "clinic", CLINIC, CLINIC_CODE)
    _write_model(models, "shop", SHOP)
    _table(data / "clinic" / "vitals.parquet", "patient_id", [1, 2, 3, 4, 5], OLD, bmi=[20.0, 22.5, 25.0, 27.5, 30.0],
           smoker=[True, False, False, True, False])  # fmt: skip
    _table(data / "shop" / "sales.parquet", "store_id", ["north", "south"], END - timedelta(days=3), revenue=[1.5, 2.5])
    _table(data / "shop" / "returns.parquet", "store_id", ["north"], LATER, rate=[0.1])
    env = {
        "MLP_STATE_DIR": str(tmp / "state"),
        "MLP_BUNDLED_MODELS_DIR": str(REPO_ROOT / "pipelines" / "models"),
        "MLP_MODELS_DIR": str(models),
        "MLP_FEAST__DATA_DIR": str(data),
        "MLP_FEAST__PROJECT": "mlp_models",
        "MLP_FEAST__REPO_PATH": str(REPO_ROOT / "feature_repo"),
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        applied = _cli("features", "apply")
        assert applied.exit_code == 0, applied.output
        yield get_settings()


def _cli(*args: str) -> Result:
    result = runner.invoke(app, list(args), env={"COLUMNS": "400"})
    assert "Traceback" not in result.output
    return result


def test_first_materialization_loads_history_older_than_the_ttl_and_warns_about_empty_views(world: Settings) -> None:
    from mlplatform.features import FeatureStoreAdapter

    result = _cli("features", "materialize", "--end", END.isoformat())
    assert result.exit_code == 0, result.output
    assert "vitals: 5 rows" in result.output and "sales: 2 rows" in result.output
    for view, source in (
        ("returns", "shop/returns.parquet"),
        ("audits", "shop/missing.parquet"),
        ("customer_profile", "fraud_detector/customer_profile.parquet"),
    ):
        assert f"warning: feature view {view!r} loaded no rows: its source" in result.output
        assert source in result.output
    assert f"(no data) .. {END.isoformat()}" in result.output
    adapter = FeatureStoreAdapter(world)
    online = adapter.store.get_online_features(features=["vitals:bmi"], entity_rows=[{"patient_id": 5}]).to_dict()
    assert online["bmi"] == [30.0]
    again = adapter.materialize(END)
    assert again.rows["vitals"] is None and again.rows["sales"] is None  # up to date: nothing read
    assert {load.view for load in again.empty} == {"audits", "returns", "customer_profile", "transaction_stats"}


def test_features_list_shows_every_model_view_with_rows_and_freshness(world: Settings) -> None:
    _cli("features", "materialize", "--end", END.isoformat())
    result = _cli("features", "list")
    assert result.exit_code == 0, result.output
    lines = {line.split("│")[1].strip(): line for line in result.output.splitlines() if line.count("│") > 3}
    vitals = [cell.strip() for cell in lines["vitals"].split("│")[1:-1]]
    assert vitals[:7] == ["vitals", "batch", "patient", "2", "5", "2020-01-05 00:00 UTC", "2025-01-01 00:00 UTC"]
    returns = [cell.strip() for cell in lines["returns"].split("│")[1:-1]]
    assert returns[4:7] == ["1", "2026-01-01 00:00 UTC", "-"]
    assert [cell.strip() for cell in lines["dosage"].split("│")[1:4]] == ["dosage", "on demand", "-"]
    assert "service clinic_v1: vitals, dosage" in result.output
    assert "service fraud_detector_v1: customer_profile, transaction_stats, transaction_context" in result.output


def test_features_get_shows_online_values_of_a_view_and_a_service(world: Settings) -> None:
    _cli("features", "materialize", "--end", END.isoformat())
    view = _cli("features", "get", "vitals", "--entity", "patient_id=2")
    assert view.exit_code == 0, view.output
    assert "bmi" in view.output and "22.5" in view.output and "False" in view.output
    sales = _cli("features", "get", "sales", "--entity", "store_id=south")
    assert sales.exit_code == 0 and "2.5" in sales.output
    # In another process: the on-demand function comes back from the registry, not from the features.py file.
    completed = subprocess.run(
        [
            str(Path(sys.executable).parent / "mlplatform"),
            "features",
            "get",
            "clinic_v1",
            "--entity",
            "patient_id=4",
            "--entity",
            "dose=2.5",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
        env={**world.child_env("api"), "PATH": str(Path(sys.executable).parent), "COLUMNS": "200"},
    )
    assert completed.returncode == 0, completed.stderr
    assert "bmi_per_dose" in completed.stdout and "11.0" in completed.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "--entity", "patient_id=1"], "unknown feature view or service 'nope'; views: "),
        (["vitals", "--entity", "patient_id"], "--entity 'patient_id' is not key=value"),
        (
            ["vitals", "--entity", "customer_id=1"],
            "unknown key(s) ['customer_id'] for 'vitals': it needs --entity for patient_id (int64)",
        ),
        (["vitals", "--entity", "patient_id=abc"], "--entity patient_id=abc: not a int64 value"),
        (["clinic_v1", "--entity", "patient_id=1"], "missing key(s) ['dose'] for 'clinic_v1'"),
        (["vitals", "--entity", "patient_id=999"], "no online values for patient_id=999 in 'vitals'"),
    ],
)  # fmt: skip
def test_features_get_refuses_bad_input_in_one_line(world: Settings, args: list[str], message: str) -> None:
    _cli("features", "materialize", "--end", END.isoformat())
    result = _cli("features", "get", *args)
    assert result.exit_code == 1
    assert message in " ".join(result.output.split())


def test_a_source_feast_cannot_convert_names_view_file_and_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Timezone-aware nanosecond timestamps (pandas' default once localized) fail in DuckDB: say where and why."""
    features = {**CLINIC, "services": []}
    _write_model(tmp_path / "models", "clinic", features)
    path = tmp_path / "data" / "clinic" / "vitals.parquet"
    path.parent.mkdir(parents=True)
    times = pd.date_range(OLD, periods=2, freq="D")  # datetime64[ns, UTC]
    pd.DataFrame(
        {"patient_id": [1, 2], "event_timestamp": times, "bmi": [1.0, 2.0], "smoker": [True, False]}
    ).to_parquet(path)
    for key, value in {
        "MLP_STATE_DIR": tmp_path / "state",
        "MLP_BUNDLED_MODELS_DIR": tmp_path / "models",
        "MLP_MODELS_DIR": tmp_path / "none",
        "MLP_FEAST__DATA_DIR": tmp_path / "data",
    }.items():
        monkeypatch.setenv(key, str(value))
    assert _cli("features", "apply").exit_code == 0
    result = _cli("features", "materialize", "--end", END.isoformat())
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert f"feature view 'vitals': Feast could not read its source {path}" in text
    assert "fix: event timestamps must be timezone-aware UTC at microsecond precision" in text
