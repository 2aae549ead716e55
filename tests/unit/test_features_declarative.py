"""features.yaml (and features.py) compiled to Feast objects: the schema's checks, several models side by side,
and the fraud demo's objects as they were before they moved into its model folder."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlplatform.demo.fraud_data import TRANSACTION_STATS_FEATURES
from mlplatform.features.declarative import FeatureDefinitionError, load_feature_definitions
from mlplatform.specs import model_folders
from tests.support.environment import REPO_ROOT

ENTITY = {"name": "patient", "join_key": "patient_id", "type": "int64"}
VIEW = {
    "name": "vitals",
    "entity": "patient",
    "source": "vitals.parquet",
    "ttl_days": 30,
    "features": {"bmi": "float64"},
}


def _model(root: Path, name: str, features: Any, code: str | None = None) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "spec.yaml").write_text("# not read by the feature loader\n")
    (folder / "features.yaml").write_text(
        features if isinstance(features, str) else yaml.safe_dump(features, sort_keys=False)
    )
    if code is not None:
        (folder / "features.py").write_text(code)
    return folder


def _load(root: Path) -> list[Any]:
    return load_feature_definitions(model_folders([root]), lambda name: root.parent / "data" / name)


def _by_name(objects: list[Any]) -> dict[str, Any]:
    return {item.name: item for item in objects}


def test_a_features_file_compiles_to_entity_source_view_and_service(tmp_path: Path) -> None:
    from feast import Entity, FeatureService, FeatureView, FileSource, ValueType

    features = {
        "owner": "team@example.com",
        "entities": [{**ENTITY, "description": "A patient."}],
        "views": [
            {
                **VIEW,
                "features": {"age": "int64", "bmi": "float64", "smoker": "bool", "clinic": "string"},
                "created_timestamp_column": "loaded_at",
                "tags": {"domain": "health"},
            }
        ],
        "services": [{"name": "vitals_v1", "features": ["vitals"], "tags": {"model": "health"}}],
    }
    _model(tmp_path / "models", "health", features)
    objects = _load(tmp_path / "models")
    assert [type(item) for item in objects] == [Entity, FileSource, FeatureView, FeatureService]
    entity, source, view, service = objects
    assert entity.join_key == "patient_id" and entity.value_type == ValueType.INT64
    assert source.name == "vitals_source" and source.path == str(tmp_path / "data" / "health" / "vitals.parquet")
    assert source.timestamp_field == "event_timestamp" and source.created_timestamp_column == "loaded_at"
    assert [(f.name, str(f.dtype)) for f in view.features] == [
        ("age", "Int64"),
        ("bmi", "Float64"),
        ("smoker", "Bool"),
        ("clinic", "String"),
    ]
    assert view.ttl == timedelta(days=30) and view.online and view.tags == {"domain": "health"}
    assert view.owner == "team@example.com" and view.entities == ["patient"]
    assert [p.name for p in service.feature_view_projections] == ["vitals"]


def test_two_models_side_by_side_share_an_identical_entity(tmp_path: Path) -> None:
    root = tmp_path / "models"
    _model(root, "alpha", {"entities": [ENTITY], "views": [VIEW]})
    other = {**VIEW, "name": "labs", "source": "labs.parquet", "features": {"glucose": "float64"}}
    _model(root, "beta", {"entities": [ENTITY], "views": [other], "services": [{"name": "b", "features": ["labs"]}]})
    objects = _by_name(_load(root))
    assert sorted(objects) == ["b", "labs", "labs_source", "patient", "vitals", "vitals_source"]
    assert objects["labs_source"].path == str(tmp_path / "data" / "beta" / "labs.parquet")
    assert objects["vitals_source"].path == str(tmp_path / "data" / "alpha" / "vitals.parquet")


def test_string_entities_and_no_ttl(tmp_path: Path) -> None:
    from feast import ValueType

    entity = {**ENTITY, "type": "string"}
    _model(tmp_path / "m", "shop", {"entities": [entity], "views": [{**VIEW, "ttl_days": 0}]})
    objects = _by_name(_load(tmp_path / "m"))
    assert objects["patient"].value_type == ValueType.STRING
    assert objects["vitals"].ttl == timedelta(0)


@pytest.mark.parametrize(
    ("features", "message"),
    [
        ("- just\n- a list\n", "features must be a YAML mapping, got list"),
        ("views: [unclosed\n", "not valid YAML"),
        ({"entities": [{**ENTITY, "type": "float"}]}, "features.yaml: entities.0.type: Input should be 'int64'"),
        ({"entities": [ENTITY], "views": [{**VIEW, "ttl_days": -1}]}, "views.0.ttl_days: Input should be greater"),
        ({"entities": [ENTITY], "views": [{**VIEW, "source": "../x.parquet"}]}, "views.0.source: Value error, must"),
        ({"entities": [ENTITY], "views": [{**VIEW, "features": {}}]}, "views.0.features: Dictionary should have"),
        (
            {"entities": [ENTITY], "views": [{**VIEW, "features": {"bmi": "decimal"}}]},
            "views.0.features.bmi: Input should be 'float64', 'int64', 'string' or 'bool'",
        ),
        (
            {"entities": [ENTITY], "views": [{**VIEW, "features": {"bad name": "int64"}}]},
            "feature names must be identifiers",
        ),
        ({"entities": [ENTITY], "views": [{**VIEW, "entity": "visit"}]}, "views.0.entity: 'visit' is not declared"),
        (
            {"entities": [ENTITY], "views": [{**VIEW, "features": {"patient_id": "int64"}}]},
            "views.0.features: ['patient_id'] is the join key or timestamp column",
        ),
        ({"entities": [ENTITY], "views": [VIEW, VIEW]}, "views: name(s) ['vitals'] used more than once"),
        ({"entities": [ENTITY], "views": [{**VIEW, "ttl": 3}]}, "views.0.ttl: Extra inputs are not permitted"),
        ({"entities": [ENTITY], "views": [{**VIEW, "ttl_days": None}]}, "views.0.ttl_days: Input should be a valid"),
        (
            {"entities": [ENTITY], "views": [VIEW], "services": [{"name": "s", "features": ["vitalz"]}]},
            "services.0.features: unknown view(s) ['vitalz']; this model defines vitals",
        ),
        ({"services": [{"name": "s", "features": []}]}, "services.0.features: Tuple should have at least 1 item"),
    ],
)
def test_bad_features_file_names_file_and_field(tmp_path: Path, features: Any, message: str) -> None:
    folder = _model(tmp_path / "models", "health", features)
    with pytest.raises(FeatureDefinitionError) as caught:
        _load(tmp_path / "models")
    assert str(folder / "features.yaml") in str(caught.value)
    assert message in str(caught.value)


def test_conflicting_entity_names_both_files(tmp_path: Path) -> None:
    root = tmp_path / "models"
    _model(root, "alpha", {"entities": [ENTITY]})
    _model(root, "beta", {"entities": [{**ENTITY, "join_key": "pid"}]})
    with pytest.raises(FeatureDefinitionError, match="entity 'patient' is declared differently in") as caught:
        _load(root)
    assert str(root / "alpha" / "features.yaml") in str(caught.value)
    assert str(root / "beta" / "features.yaml") in str(caught.value)


@pytest.mark.parametrize(("kind", "name"), [("feature view", "vitals"), ("feature service", "shared")])
def test_a_view_or_service_name_used_by_two_models_names_both_files(tmp_path: Path, kind: str, name: str) -> None:
    root = tmp_path / "models"
    services = [{"name": "shared", "features": ["vitals"]}]
    _model(root, "alpha", {"entities": [ENTITY], "views": [VIEW], "services": services})
    second = VIEW if kind == "feature view" else {**VIEW, "name": "other", "source": "o.parquet"}
    second_services = [{"name": "shared", "features": [second["name"]]}]
    _model(root, "beta", {"entities": [ENTITY], "views": [second], "services": second_services})
    with pytest.raises(FeatureDefinitionError, match=f"{kind} '{name}' is defined by both") as caught:
        _load(root)
    assert str(root / "alpha" / "features.yaml") in str(caught.value)
    assert str(root / "beta" / "features.yaml") in str(caught.value)


ODFV_CODE = """
import inspect
from feast import Field, RequestSource
from feast.on_demand_feature_view import OnDemandFeatureView
from feast.types import Float64


def scaled(inputs):
    return {"bmi_per_dose": [b / d if d else None for b, d in zip(inputs["bmi"], inputs["dose"])]}


def build_definitions(views, data_dir):
    request = RequestSource(name="dose_request", schema=[Field(name="dose", dtype=Float64)])
    view = OnDemandFeatureView(
        name="dosage",
        sources=[views["vitals"], request],
        schema=[Field(name="bmi_per_dose", dtype=Float64)],
        udf=scaled,
        udf_string=inspect.getsource(scaled),
        mode="python",
    )
    return [request, view]
"""


def test_features_py_adds_on_demand_views_a_service_can_list(tmp_path: Path) -> None:
    services = [{"name": "s", "features": ["vitals", "dosage"]}]
    _model(tmp_path / "models", "health", {"entities": [ENTITY], "views": [VIEW], "services": services}, ODFV_CODE)
    objects = _by_name(_load(tmp_path / "models"))
    assert [p.name for p in objects["s"].feature_view_projections] == ["vitals", "dosage"]
    udf = objects["dosage"].feature_transformation.udf
    assert udf.__module__ == "__main__"  # pickled by value: a model server cannot import the file
    assert udf({"bmi": [20.0], "dose": [4.0]}) == {"bmi_per_dose": [5.0]}


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("raise RuntimeError('boom')\n", "features.py: failed to load: RuntimeError: boom"),
        ("x = 1\n", "features.py: must define build_definitions(views"),
        ("def build_definitions(views, data_dir):\n    return {}\n", "returned dict, expected a list"),
        ("def build_definitions(views, data_dir):\n    return [1]\n", "returned a int; expected Feast objects"),
        ("def build_definitions(views, data_dir):\n    return views['nope']\n", "build_definitions failed: KeyError"),
    ],
)
def test_bad_features_py_names_the_file(tmp_path: Path, code: str, message: str) -> None:
    _model(tmp_path / "models", "health", {"entities": [ENTITY], "views": [VIEW]}, code)
    with pytest.raises(FeatureDefinitionError, match=message.replace("(", r"\(").replace("[", r"\[")) as caught:
        _load(tmp_path / "models")
    assert str(tmp_path / "models" / "health" / "features.py") in str(caught.value)


def test_fraud_objects_are_the_ones_the_demo_always_had(tmp_path: Path) -> None:
    """Names, features, types, TTLs, sources, tags and order as in the former feature_repo/definitions.py."""
    from feast import RequestSource
    from feast.on_demand_feature_view import OnDemandFeatureView

    objects: list[Any] = load_feature_definitions(
        model_folders([REPO_ROOT / "pipelines" / "models"]), lambda n: tmp_path / n
    )
    assert [item.name for item in objects] == [
        "customer",
        "customer_profile_source",
        "transaction_stats_source",
        "customer_profile",
        "transaction_stats",
        "transaction_request",
        "transaction_context",
        "fraud_detector_v1",
    ]
    by_name = _by_name(objects)
    assert by_name["customer"].join_key == "customer_id"
    profile, stats = by_name["customer_profile"], by_name["transaction_stats"]
    assert [(f.name, str(f.dtype)) for f in profile.features] == [
        ("account_age_days", "Int64"),
        ("credit_limit", "Float64"),
        ("home_region_risk", "Float64"),
    ]
    assert [f.name for f in stats.features] == list(TRANSACTION_STATS_FEATURES), "the generator writes these"
    assert (profile.ttl, stats.ttl) == (timedelta(days=365), timedelta(days=2))
    assert profile.tags == {"domain": "fraud", "freshness": "daily"}
    assert stats.tags == {"domain": "fraud", "freshness": "per-transaction"}
    assert profile.owner == stats.owner == "fraud-ml@mlplatform.local"
    assert profile.batch_source.path == str(tmp_path / "fraud_detector" / "customer_profile.parquet")
    assert profile.batch_source.created_timestamp_column == "created"
    assert stats.batch_source.path == str(tmp_path / "fraud_detector" / "transaction_stats.parquet")
    assert isinstance(by_name["transaction_request"], RequestSource)
    context = by_name["transaction_context"]
    assert isinstance(context, OnDemandFeatureView)
    assert [f.name for f in context.features] == [
        "txn_amount",
        "amount_to_mean_7d",
        "amount_to_mean_30d",
        "amount_zscore_30d",
    ]
    assert context.tags == {"domain": "fraud", "computed": "request-time"}
    service = by_name["fraud_detector_v1"]
    assert [p.name for p in service.feature_view_projections] == [
        "customer_profile",
        "transaction_stats",
        "transaction_context",
    ]
    assert service.tags == {"model": "fraud_detector", "domain": "fraud"}


def test_features_py_may_not_redefine_a_view_of_features_yaml(tmp_path: Path) -> None:
    code = ODFV_CODE.replace('name="dosage"', 'name="vitals"')
    _model(tmp_path / "models", "health", {"entities": [ENTITY], "views": [VIEW]}, code)
    with pytest.raises(FeatureDefinitionError, match=r"features\.py: feature view 'vitals' is also defined by .*yaml"):
        _load(tmp_path / "models")
