"""Write a new model: its data into ``settings.model_data_dir(name)`` and its folder (``spec.yaml``,
``features.yaml``) under ``settings.user_models_dir``.

Why a separate step from the contract: the contract decides on tables in memory; this is the only place that
writes, and it writes everything or, when a write fails, removes what it wrote, so a refused or failed creation
leaves no half model behind.
"""

from __future__ import annotations

import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from mlplatform.config import Settings
from mlplatform.onboarding.contract import CheckedData
from mlplatform.specs import NAME_PATTERN, SPEC_FILE, SpecError, model_folders, parse_spec

FEATURES_FILE: Final = "features.yaml"
DEFAULT_ESTIMATORS: Final[dict[str, dict[str, Any]]] = {
    "classification": {
        "class_path": "sklearn.ensemble.RandomForestClassifier",
        "params": {"n_estimators": 200, "min_samples_leaf": 3, "class_weight": "balanced", "random_state": 7},
    },
    "regression": {
        "class_path": "sklearn.ensemble.RandomForestRegressor",
        "params": {"n_estimators": 200, "min_samples_leaf": 3, "random_state": 7},
    },
}
"""A random forest: no scaling needed, robust to missing values and to the feature mix of a first model."""
DEFAULT_GATES: Final[dict[str, dict[str, Any]]] = {
    "binary": {"minimums": {"roc_auc": 0.55}},
    "multiclass": {"minimums": {"roc_auc": 0.55}},
    "regression": {"minimums": {"r2": 0.0}},
}
"""Floors that only refuse a model no better than chance (classification) or than the mean (regression)."""
MAX_TTL_DAYS: Final = 3650


class ScaffoldError(ValueError):
    """The model cannot be created under this name (it exists, or its data directory is taken)."""


@dataclass(frozen=True)
class Scaffold:
    """What was written."""

    folder: Path
    data_dir: Path
    spec: Path
    features: Path
    views: list[str]


def entity_name(key: str) -> str:
    """``patient_id`` -> ``patient``: the Feast entity a join key names."""
    return key.removesuffix("_id") or key


def estimator_from_class_path(class_path: str | None, task: str) -> dict[str, Any]:
    """The spec's estimator: the named class with default parameters, or the task's default forest."""
    family = "regression" if task == "regression" else "classification"
    if class_path is None:
        return DEFAULT_ESTIMATORS[family]
    return {"class_path": class_path, "params": {}}


def check_name_free(settings: Settings, name: str) -> None:
    """A new model's name is valid and used by no model folder in any root, nor by a data directory."""
    if not re.fullmatch(NAME_PATTERN, name):
        raise ScaffoldError(f"invalid model name {name!r}: use 2-63 lowercase letters, digits and underscores")
    existing = model_folders(settings.model_roots).get(name)
    if existing is not None:
        raise ScaffoldError(f"a model named {name!r} already exists ({existing}); choose another name")
    data_dir = settings.model_data_dir(name)
    if data_dir.exists() and any(data_dir.iterdir()):
        raise ScaffoldError(f"{data_dir} already holds data; choose another name or remove that directory")


def ttl_days(data: CheckedData) -> int:
    """How long a feature row stays valid: the data's whole span (so every label finds its entity's latest row)."""
    days = math.ceil((data.end - data.start).total_seconds() / 86_400)
    return min(max(days, 1), MAX_TTL_DAYS)


def features_document(name: str, data: CheckedData) -> dict[str, Any]:
    """``features.yaml``: the entity, one online view per feature table, and the model's feature service."""
    entity = entity_name(data.entity_key)
    views = [
        {
            "name": f"{name}_{table.stem}",
            "entity": entity,
            "source": table.path.name,
            "timestamp_column": data.timestamp_column,
            "ttl_days": ttl_days(data),
            "online": True,
            "features": dict(table.features),
        }
        for table in data.feature_tables
    ]
    return {
        "entities": [{"name": entity, "join_key": data.entity_key, "type": data.key_type, "description": ""}],
        "views": views,
        "services": [{"name": name, "features": [view["name"] for view in views]}],
    }


def spec_document(
    name: str, data: CheckedData, estimator: dict[str, Any], owner: str, description: str
) -> dict[str, Any]:
    """``spec.yaml`` for the checked data; the data window covers every label."""
    return {
        "name": name,
        "description": description,
        "owner": owner,
        "task": data.task,
        "entity": entity_name(data.entity_key),
        "entity_key": data.entity_key,
        "features": {"service": name},
        "label": {
            "source": data.labels_path.name,
            "column": data.label,
            "timestamp_column": data.timestamp_column,
        },
        "data": {"window_days": ttl_days(data) + 1},
        "estimator": estimator,
        "split": {"holdout_fraction": 0.2},
        "gates": DEFAULT_GATES[data.task],
        "schedule": None,
    }


def write_model(
    settings: Settings,
    name: str,
    data: CheckedData,
    *,
    estimator_class: str | None = None,
    owner: str = "unassigned",
) -> Scaffold:
    """Write the data and the model folder; the spec is validated before anything is written."""
    check_name_free(settings, name)
    folder = settings.user_models_dir / name
    description = f"Created from {', '.join(t.path.name for t in data.feature_tables)} and {data.labels_path.name}."
    spec = spec_document(name, data, estimator_from_class_path(estimator_class, data.task), owner, description)
    try:
        parse_spec(spec, folder / SPEC_FILE)
    except SpecError as error:
        raise ScaffoldError(str(error)) from None
    features = features_document(name, data)
    data_dir = settings.model_data_dir(name)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        for table in data.feature_tables:
            table.frame.to_parquet(data_dir / table.path.name, index=False)
        data.labels.to_parquet(data_dir / data.labels_path.name, index=False)
        folder.mkdir(parents=True)
        (folder / FEATURES_FILE).write_text(_yaml(features, "Feature views of", name), encoding="utf-8")
        (folder / SPEC_FILE).write_text(_yaml(spec, "Model spec of", name), encoding="utf-8")
    except BaseException:
        remove_model(settings, name)
        raise
    return Scaffold(folder, data_dir, folder / SPEC_FILE, folder / FEATURES_FILE, features["services"][0]["features"])


def remove_model(settings: Settings, name: str) -> None:
    """Remove a created model's folder and data (used when its creation fails part way)."""
    shutil.rmtree(settings.user_models_dir / name, ignore_errors=True)
    shutil.rmtree(settings.model_data_dir(name), ignore_errors=True)


def _yaml(document: dict[str, Any], what: str, name: str) -> str:
    header = f"# {what} {name}, written by `mlplatform models init`; edit freely, then `mlplatform models validate`.\n"
    return header + yaml.safe_dump(document, sort_keys=False, default_flow_style=False)
