"""Declarative features: each model folder's ``features.yaml`` (and optional ``features.py``) compiled to Feast.

A data scientist describes plain feature views in YAML and writes no Python; the platform builds the Feast
objects (``Entity``, ``FileSource``, ``FeatureView``, ``FeatureService``) from every model folder across
``settings.model_roots`` (``load_feature_definitions``), so adding or removing a model never edits another
model's files or platform code.  ``mlplatform`` never imports ``feature_repo/``: this module is the loader.

``<model>/features.yaml`` (every key but the names is optional unless marked required)::

    owner: team@example.com          # owner of every view and service in this file (default "")
    entities:
      - name: patient                # Feast entity name (= spec.entity), required
        join_key: patient_id         # column that identifies it (= spec.entity_key), required
        type: int64                  # int64 | string, required
        description: ""
    views:
      - name: patient_measurements   # unique across all models, required
        entity: patient              # an entity of this file, required
        source: features.parquet     # parquet file relative to the model's data dir (<data_dir>/<model>/), required
        source_description: ""       # what the file holds
        timestamp_column: event_timestamp
        created_timestamp_column: null   # tie-breaker between rows with the same event time
        ttl_days: 3650               # how old a value may be and still count; 0 = no limit, required
        online: true                 # materialized into the online store
        features: {age: float64, bmi: float64}   # name: float64 | int64 | string | bool, in this order, required
        description: ""
        tags: {}
    services:
      - name: diabetes_v1            # unique across all models; the spec's features.service, required
        features: [patient_measurements]   # whole views of this model (features.yaml or features.py), required
        description: ""
        tags: {}

The view's ``FileSource`` is named ``<view>_source``.  ``<model>/features.py`` is only for what YAML cannot say
(request-time inputs, on-demand transformations).  It defines
``build_definitions(views: dict[str, FeatureView], data_dir: Path) -> list[object]``, receiving this model's
views by name and its data directory, and returns extra Feast objects (e.g. a ``RequestSource`` and an
``OnDemandFeatureView``) that the services of ``features.yaml`` may list by name.  It is loaded by path, and its
functions are marked to be pickled by value, so an on-demand view's function loads in other processes (model
servers) that cannot import the file; keep such functions self-contained (imports inside the body).

A model's services list its own views only, so removing one model cannot break another.  The same entity declared
identically by two models is one entity; a conflicting entity, or a view, source or service name used by two
models, is an error naming both files.  Errors name the file and the field (``m/features.yaml: views.0.ttl_days:
...``) because these files are written by hand.
"""

from __future__ import annotations

import importlib.util
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mlplatform.specs import read_yaml, validation_message

FEATURES_FILE = "features.yaml"
FEATURES_CODE = "features.py"
BUILD_FUNCTION = "build_definitions"
SOURCE_SUFFIX = "_source"
FEAST_NAME = r"^[A-Za-z][A-Za-z0-9_]*$"
EntityType = Literal["int64", "string"]
FeatureType = Literal["float64", "int64", "string", "bool"]


class FeatureDefinitionError(ValueError):
    """Feature definitions that cannot be used; the message names the file (and the field)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EntityDef(_Strict):
    name: str = Field(pattern=FEAST_NAME, description="Feast entity name (the spec's entity).")
    join_key: str = Field(pattern=FEAST_NAME, description="Column identifying the entity (the spec's entity_key).")
    type: EntityType = Field(description="Type of the join key: int64 or string.")
    description: str = ""


class ViewDef(_Strict):
    name: str = Field(pattern=FEAST_NAME, description="Feature view name, unique across all models.")
    entity: str = Field(description="An entity declared in the same file.")
    source: str = Field(description="Parquet file, relative to the model's data directory.")
    source_description: str = ""
    timestamp_column: str = Field("event_timestamp", description="Event time of each row (timezone-aware UTC).")
    created_timestamp_column: str | None = Field(None, description="Tie-breaker for rows with equal event times.")
    ttl_days: int = Field(ge=0, le=36500, description="How old a value may be and still be used; 0: no limit.")
    online: bool = Field(True, description="Materialized into the online store.")
    features: dict[str, FeatureType] = Field(min_length=1, description="Feature columns and their types, in order.")
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)

    @field_validator("source")
    @classmethod
    def _relative_inside_data_dir(cls, value: str) -> str:
        path = Path(value)
        if not value or path.is_absolute() or ".." in path.parts:
            raise ValueError("must be a relative path inside the model's data directory")
        return value

    @field_validator("features")
    @classmethod
    def _feature_names(cls, value: dict[str, str]) -> dict[str, str]:
        import re

        bad = [name for name in value if not re.fullmatch(FEAST_NAME, name)]
        if bad:
            raise ValueError(f"feature names must be identifiers (letters, digits, _): {bad}")
        return value


class ServiceDef(_Strict):
    name: str = Field(pattern=FEAST_NAME, description="Feature service name (the spec's features.service).")
    features: tuple[str, ...] = Field(min_length=1, description="Views of this model, whole, in this order.")
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)


class FeaturesFile(_Strict):
    """One ``features.yaml``."""

    owner: str = Field("", description="Owner of every view and service in the file.")
    entities: tuple[EntityDef, ...] = ()
    views: tuple[ViewDef, ...] = ()
    services: tuple[ServiceDef, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> FeaturesFile:
        for kind, items in (("entities", self.entities), ("views", self.views), ("services", self.services)):
            names = [item.name for item in items]
            repeated = sorted({name for name in names if names.count(name) > 1})
            if repeated:
                raise ValueError(f"{kind}: name(s) {repeated} used more than once")
        entities = {entity.name: entity for entity in self.entities}
        for index, view in enumerate(self.views):
            if view.entity not in entities:
                raise ValueError(
                    f"views.{index}.entity: {view.entity!r} is not declared under entities "
                    f"(declared: {', '.join(entities) or 'none'})"
                )
            clash = {entities[view.entity].join_key, view.timestamp_column} & set(view.features)
            if clash:
                raise ValueError(f"views.{index}.features: {sorted(clash)} is the join key or timestamp column")
        return self


def parse_features_file(data: object, path: Path) -> FeaturesFile:
    """Validate loaded YAML content; ``path`` is used in messages only."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise FeatureDefinitionError(f"{path}: features must be a YAML mapping, got {type(data).__name__}")
    try:
        return FeaturesFile.model_validate(data)
    except ValidationError as error:
        raise FeatureDefinitionError(validation_message(path, "feature definitions", error)) from None


def load_features_file(path: Path) -> FeaturesFile:
    """Read and validate one ``features.yaml``."""
    return parse_features_file(read_yaml(path, "feature definitions", FeatureDefinitionError), path)


@dataclass
class ModelFeatures:
    """The Feast objects of one model folder, in ``feast apply`` order, and which file declared each."""

    model: str
    entities: dict[str, EntityDef] = field(default_factory=dict)
    objects: list[Any] = field(default_factory=list)
    origin: dict[tuple[str, str], Path] = field(default_factory=dict)
    """(kind, name) -> the file that declared it; kinds: entity, data source, feature view, feature service."""


def compile_model(model: str, folder: Path, data_dir: Path) -> ModelFeatures:
    """One model folder's Feast objects: entities, sources, views, ``features.py``'s objects, services."""
    from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
    from feast.types import Bool, Float64, Int64, String

    dtypes = {"float64": Float64, "int64": Int64, "string": String, "bool": Bool}
    value_types = {"int64": ValueType.INT64, "string": ValueType.STRING}
    yaml_path, code_path = folder / FEATURES_FILE, folder / FEATURES_CODE
    spec = load_features_file(yaml_path) if yaml_path.is_file() else FeaturesFile()
    result = ModelFeatures(model=model, entities={entity.name: entity for entity in spec.entities})
    entities = {
        entity.name: Entity(
            name=entity.name,
            join_keys=[entity.join_key],
            value_type=value_types[entity.type],
            description=entity.description,
        )
        for entity in spec.entities
    }
    sources, views = [], {}
    for view in spec.views:
        source = FileSource(
            name=view.name + SOURCE_SUFFIX,
            path=str(data_dir / view.source),
            timestamp_field=view.timestamp_column,
            created_timestamp_column=view.created_timestamp_column or "",
            description=view.source_description,
        )
        sources.append(source)
        views[view.name] = FeatureView(
            name=view.name,
            entities=[entities[view.entity]],
            ttl=timedelta(days=view.ttl_days),
            schema=[Field(name=name, dtype=dtypes[kind]) for name, kind in view.features.items()],
            source=source,
            online=view.online,
            description=view.description,
            tags=view.tags,
            owner=spec.owner,
        )
    extras = _build_extras(code_path, views, data_dir) if code_path.is_file() else []
    named: dict[str, Any] = {**views, **{item.name: item for item in extras if _kind(item) == "feature view"}}
    services = []
    for index, service in enumerate(spec.services):
        unknown = [name for name in service.features if name not in named]
        if unknown:
            raise FeatureDefinitionError(
                f"{yaml_path}: services.{index}.features: unknown view(s) {unknown}; this model defines "
                f"{', '.join(named) or 'none'} (a service lists views of its own model)"
            )
        services.append(
            FeatureService(
                name=service.name,
                features=[named[name] for name in service.features],
                description=service.description,
                tags=service.tags,
                owner=spec.owner,
            )
        )
    result.objects = [*entities.values(), *sources, *views.values(), *extras, *services]
    for item in result.objects:
        key, path = (_kind(item), item.name), code_path if any(item is extra for extra in extras) else yaml_path
        if key in result.origin:
            raise FeatureDefinitionError(f"{path}: {key[0]} {item.name!r} is also defined by {result.origin[key]}")
        result.origin[key] = path
    return result


def _kind(item: Any) -> str:
    """The Feast namespace an object's name lives in."""
    from feast import Entity, FeatureService
    from feast.base_feature_view import BaseFeatureView
    from feast.data_source import DataSource

    kinds = (
        (Entity, "entity"),
        (DataSource, "data source"),
        (BaseFeatureView, "feature view"),
        (FeatureService, "feature service"),
    )
    for cls, kind in kinds:
        if isinstance(item, cls):
            return kind
    raise TypeError(type(item).__name__)


def _build_extras(path: Path, views: dict[str, Any], data_dir: Path) -> list[Any]:
    """Run ``build_definitions`` of a ``features.py`` loaded by path; check it returns named Feast objects."""
    module_name = f"mlplatform_model_features_{path.parent.name}"
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise FeatureDefinitionError(f"{path}: cannot be loaded as a Python file")
    module = importlib.util.module_from_spec(loader_spec)
    try:
        loader_spec.loader.exec_module(module)
    except Exception as error:  # the file is user code: any failure is reported with its path
        raise FeatureDefinitionError(f"{path}: failed to load: {type(error).__name__}: {error}") from error
    _pickle_functions_by_value(module)
    build = getattr(module, BUILD_FUNCTION, None)
    if not callable(build):
        raise FeatureDefinitionError(
            f"{path}: must define {BUILD_FUNCTION}(views: dict[str, FeatureView], data_dir: Path) -> list[object]"
        )
    try:
        objects = build(dict(views), data_dir)
    except Exception as error:  # user code again
        raise FeatureDefinitionError(f"{path}: {BUILD_FUNCTION} failed: {type(error).__name__}: {error}") from error
    if not isinstance(objects, list):
        raise FeatureDefinitionError(f"{path}: {BUILD_FUNCTION} returned {type(objects).__name__}, expected a list")
    for item in objects:
        try:
            _kind(item)
        except TypeError:
            raise FeatureDefinitionError(
                f"{path}: {BUILD_FUNCTION} returned a {type(item).__name__}; expected Feast objects "
                "(RequestSource, OnDemandFeatureView, ...)"
            ) from None
    return objects


def _pickle_functions_by_value(module: types.ModuleType) -> None:
    """Mark the file's functions as ``__main__``'s, which dill pickles by value (as Feast's own decorator does):
    a model server cannot import a file loaded by path under a private name."""
    for value in vars(module).values():
        if isinstance(value, types.FunctionType) and value.__module__ == module.__name__:
            value.__module__ = "__main__"


_CLASH_ORDER = {"feature view": 0, "feature service": 1, "data source": 2, "entity": 3}
"""Which name clash is reported first: a view's clash, not the clash of the source named after it."""


def merge_models(models: Iterable[ModelFeatures]) -> list[object]:
    """All models' objects as one list; identical entities once, any other name used twice is an error."""
    models = list(models)
    _check_unique_names(models)
    objects: list[object] = []
    entities: dict[str, tuple[EntityDef, Path]] = {}
    for model in models:
        for item in model.objects:
            if _kind(item) == "entity":
                declared, path = model.entities[item.name], model.origin[("entity", item.name)]
                if item.name in entities:
                    first, first_path = entities[item.name]
                    if first != declared:
                        raise FeatureDefinitionError(
                            f"entity {item.name!r} is declared differently in {first_path} and {path}: "
                            f"{first.model_dump()} vs {declared.model_dump()}; make them identical or rename one"
                        )
                    continue
                entities[item.name] = (declared, path)
            objects.append(item)
    return objects


def _check_unique_names(models: list[ModelFeatures]) -> None:
    """Views, services and sources have global names: one used by two models is an error naming both files."""
    seen: dict[tuple[str, str], Path] = {}
    keys = [(key, path) for model in models for key, path in model.origin.items() if key[0] != "entity"]
    for (kind, name), path in sorted(keys, key=lambda pair: _CLASH_ORDER[pair[0][0]]):
        if (kind, name) in seen:
            raise FeatureDefinitionError(
                f"{kind} {name!r} is defined by both {seen[(kind, name)]} and {path}; names are global: rename one"
            )
        seen[(kind, name)] = path


def load_feature_definitions(folders: Mapping[str, Path], data_dir: Callable[[str], Path]) -> list[object]:
    """Every model folder's Feast objects (``folders``: model name -> folder, e.g. ``specs.model_folders``),
    with each model's sources under ``data_dir(model)`` (``settings.model_data_dir``)."""
    return merge_models(compile_model(name, folder, data_dir(name)) for name, folder in sorted(folders.items()))
