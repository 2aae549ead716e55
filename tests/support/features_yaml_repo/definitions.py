"""A test feature repository: Feast objects from every created model's ``features.yaml``.

A stand-in, named as such, for the platform's features.yaml compiler (built in parallel in ``mlplatform.features``)
so the onboarding tests can apply real Feast definitions today.  It reads ``<state_dir>/models/*/features.yaml``
(the default models directory beside ``data_dir``) with sources under ``data_dir/<model>/``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import yaml


def build_definitions(data_dir: Path) -> list[object]:
    from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
    from feast.types import Bool, Float64, Int64

    dtypes = {"float64": Float64, "int64": Int64, "bool": Bool}
    value_types = {"int64": ValueType.INT64, "string": ValueType.STRING}
    objects: list[object] = []
    for path in sorted((data_dir.parent / "models").glob("*/features.yaml")):
        model = path.parent.name
        document = yaml.safe_load(path.read_text())
        entities = {
            item["name"]: Entity(name=item["name"], join_keys=[item["join_key"]], value_type=value_types[item["type"]])
            for item in document["entities"]
        }
        views = {}
        for view in document["views"]:
            source = FileSource(
                name=f"{view['name']}_source",
                path=str(data_dir / model / view["source"]),
                timestamp_field=view["timestamp_column"],
            )
            views[view["name"]] = FeatureView(
                name=view["name"],
                entities=[entities[view["entity"]]],
                ttl=timedelta(days=view["ttl_days"]),
                schema=[Field(name=name, dtype=dtypes[kind]) for name, kind in view["features"].items()],
                source=source,
                online=view["online"],
            )
            objects.append(source)
        services = [
            FeatureService(name=item["name"], features=[views[name] for name in item["features"]])
            for item in document["services"]
        ]
        objects.extend([*entities.values(), *views.values(), *services])
    return objects
