"""The serving benchmark's worlds: what each profile's servers read, and the requests sent to them.

Two profiles over one state directory (one MLflow, the same trained champion and second version):
- ``embedded``: the demo data (2,000 customers, 90 days) in Feast's sqlite online store, the parquet prediction
  log and the sqlite platform DB, as ``make demo`` runs.
- ``production``: a million customers materialized into Redis, the prediction log and the platform DB on
  PostgreSQL, as the chart runs.  Each customer is given the latest profile and spend statistics of one of the
  demo's customers (round robin), written as that view's parquet source and materialized through Feast like any
  feature table; requests name customers drawn uniformly from the million, so almost every read misses any cache.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WORLD = ROOT / ".mlplatform" / "bench-serving"
MODEL = "fraud_detector"
BATCH = 32
PROFILES = ("embedded", "production")
PRODUCTION_ENTITIES = 1_000_000
PRODUCTION_PROJECT = "bench_serving_prod"
PRODUCTION_DATABASE = "mlp_bench_serving"


@dataclass(frozen=True)
class Stores:
    """Where the production profile's services are (the machine's own Redis and PostgreSQL by default)."""

    redis: str = "127.0.0.1:6379"
    postgres: str = "postgresql+psycopg://postgres@127.0.0.1:5432"
    entities: int = PRODUCTION_ENTITIES


def settings_for(mlflow_port: int, serving_port: int, profile: str = "embedded", stores: Stores | None = None) -> Any:
    from mlplatform.config import get_settings

    feast: dict[str, Any] = {"repo_path": ROOT / "feature_repo", "project": "bench_serving"}
    serving: dict[str, Any] = {"port": serving_port}  # the default alias poll: its CPU is part of every figure
    extra: dict[str, Any] = {}
    if profile == "production":
        stores = stores or Stores()
        feast |= {
            "project": PRODUCTION_PROJECT,
            "online_store": "redis",
            "redis_connection_string": stores.redis,
            "data_dir": WORLD / "production-data",
        }
        serving |= {"prediction_log": "postgres"}  # into the platform DB, PostgreSQL here
        extra["db"] = {"url": f"{stores.postgres}/{PRODUCTION_DATABASE}"}
    return get_settings(
        state_dir=WORLD / "state",
        bundled_models_dir=ROOT / "pipelines" / "models",
        feast=feast,
        mlflow={"port": mlflow_port},
        serving=serving,
        **extra,
    )


def build_world(settings: Any) -> None:
    """The platform DB's schema, data, features, MLflow and a champion: skipped where already present."""
    from mlplatform.demo.fraud_data import generate
    from mlplatform.features.store import FeatureStoreAdapter
    from mlplatform.registry.mlflow_registry import CHAMPION, ModelRegistry
    from mlplatform.stack.embedded import upgrade_platform_db
    from mlplatform.training.pipeline import TrainingRequest, run_all

    upgrade_platform_db(settings)  # the registry records alias moves there
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if not (settings.model_data_dir(MODEL) / "transactions.parquet").exists():
        print("generating data ...", flush=True)
        generate(settings.model_data_dir(MODEL), end=end)
    features = FeatureStoreAdapter(settings)
    features.apply()
    features.materialize(datetime.now(UTC))
    registry = ModelRegistry(settings)
    if registry.alias_holder(MODEL, CHAMPION) is None:
        print("training the champion ...", flush=True)
        run_all(settings, TrainingRequest(model=MODEL, run_key=f"bench/{time.time():.0f}", actor="benchmark"))
    if len(registry.versions(MODEL)) < 2:  # a second version for the swap-under-load run
        print("training a second version ...", flush=True)
        request = TrainingRequest(
            model=MODEL, run_key=f"bench/{time.time():.0f}", actor="benchmark", estimator_params={"max_iter": 150}
        )
        run_all(settings, request)


def build_production_world(embedded: Any, production: Any, stores: Stores) -> None:
    """A million customers in Redis and the PostgreSQL platform DB, after ``build_world(embedded)``.

    Skipped where Redis already answers for the last customer (Redis may have been restarted empty since)."""
    from mlplatform.features.store import FeatureStoreAdapter
    from mlplatform.stack.embedded import upgrade_platform_db

    create_database(stores.postgres, PRODUCTION_DATABASE)
    upgrade_platform_db(production)  # its own platform DB: the alias moves of the swap run are audited there
    features = FeatureStoreAdapter(production)
    if _holds_customer(production, features, stores.entities):
        return
    source = embedded.model_data_dir(MODEL)
    target = production.model_data_dir(MODEL)
    target.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    for view in ("customer_profile", "transaction_stats"):
        print(f"writing {stores.entities:,} customers' {view} ...", flush=True)
        scaled_latest_rows(source / f"{view}.parquet", stores.entities, now).to_parquet(target / f"{view}.parquet")
    features.apply()
    began = time.perf_counter()
    result = features.materialize(now + timedelta(seconds=1), start=now - timedelta(days=1))
    print(f"materialized {stores.entities:,} customers into Redis in {result.seconds:.0f} s", flush=True)
    (WORLD / "production-materialized.json").write_text(
        json.dumps({"entities": stores.entities, "seconds": time.perf_counter() - began})
    )


def scaled_latest_rows(path: Path, entities: int, at: datetime) -> Any:
    """The latest row of every customer in ``path``, repeated round robin for customers 1..``entities``, stamped
    ``at`` (inside every view's TTL)."""
    import pandas as pd

    frame = pd.read_parquet(path)
    latest = frame.sort_values("event_timestamp").groupby("customer_id").tail(1).reset_index(drop=True)
    picked = latest.iloc[np.arange(entities) % len(latest)].reset_index(drop=True)
    picked["customer_id"] = np.arange(1, entities + 1, dtype=np.int64)
    for column in ("event_timestamp", "created"):
        if column in picked:
            picked[column] = pd.Timestamp(at)
    return picked


def _holds_customer(settings: Any, features: Any, customer: int) -> bool:
    from mlplatform.specs import find_spec

    try:
        reader = features.online_reader(find_spec(settings.model_roots, MODEL).features.service)
        values = reader.read([{"customer_id": customer, "amount": 1.0}])
    except Exception:  # nothing applied yet, or Redis unreadable: build it
        return False
    return values["credit_limit"][0] is not None


def create_database(server: str, name: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        exists = connection.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
        if exists is None:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()


def request_entities(settings: Any, count: int) -> list[dict[str, Any]]:
    """``count`` single-entity requests: the demo's recent customers with their request values."""
    from mlplatform.loop.traffic import sample_requests
    from mlplatform.specs import find_spec

    return sample_requests(settings, find_spec(settings.model_roots, MODEL), count)


def spread_over(requests: list[dict[str, Any]], entities: int) -> list[dict[str, Any]]:
    """The same requests for customers drawn uniformly from 1..``entities`` (the production profile's)."""
    customers = np.random.default_rng(19).integers(1, entities + 1, size=len(requests))
    return [{**row, "customer_id": int(customer)} for row, customer in zip(requests, customers, strict=True)]


def bare_bodies(settings: Any, entities: list[dict[str, Any]], model_inputs: list[str]) -> tuple[list[Any], list[Any]]:
    """Inline feature vectors for the same entities (looked up once, up front), single and batched."""
    rows = [[_json_number(values.get(name)) for name in model_inputs] for values in _looked_up(settings, entities)]
    singles = [{"features": [row]} for row in rows]
    batches = [{"features": rows[i : i + BATCH]} for i in range(0, len(rows) - BATCH + 1, BATCH)]
    return singles, batches


def bare_store_bodies(
    settings: Any, entities: list[dict[str, Any]], model_inputs: list[str], stored: list[str]
) -> tuple[list[Any], list[Any]]:
    """The bare + store server's bodies: the entity keys, and inline only the model inputs that are not stored."""
    request_inputs = [name for name in model_inputs if name not in stored]
    looked_up = _looked_up(settings, entities)
    keys = [entity["customer_id"] for entity in entities]
    request = [[_json_number(values.get(name)) for name in request_inputs] for values in looked_up]
    singles = [{"keys": [key], "request": [row]} for key, row in zip(keys, request, strict=True)]
    batches = [
        {"keys": keys[i : i + BATCH], "request": request[i : i + BATCH]} for i in range(0, len(keys) - BATCH + 1, BATCH)
    ]
    return singles, batches


def _looked_up(settings: Any, entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from mlplatform.features.store import FeatureStoreAdapter
    from mlplatform.specs import find_spec

    spec = find_spec(settings.model_roots, MODEL)
    online = FeatureStoreAdapter(settings).online_features(spec.features.service, entities)
    return [{**{name: online[name][index] for name in online}, **entity} for index, entity in enumerate(entities)]


def _json_number(value: Any) -> float:
    """A model input as JSON can carry it: missing and NaN as 0.0 (JSON has no NaN)."""
    if value is None or value != value:
        return 0.0
    return float(value)


def stored_inputs(settings: Any, model_inputs: list[str]) -> dict[str, list[str]]:
    """``{batch view: [model inputs it stores]}`` of the model's feature service (the bare + store server's read)."""
    from mlplatform.features.store import FeatureStoreAdapter
    from mlplatform.loop.traffic import local_batch_views
    from mlplatform.specs import find_spec

    views = local_batch_views(FeatureStoreAdapter(settings), find_spec(settings.model_roots, MODEL))
    return {view.name: [feature.name for feature in view.features if feature.name in model_inputs] for view in views}


def platform_bodies(backend: str, entities: list[dict[str, Any]]) -> tuple[list[Any], list[Any]]:
    key = "instances" if backend.endswith("kserve") else "entities"
    singles = [{key: [entity]} for entity in entities]
    batches = [{key: entities[i : i + BATCH]} for i in range(0, len(entities) - BATCH + 1, BATCH)]
    return singles, batches


def champion_files(settings: Any) -> tuple[str, list[str]]:
    """The champion's model directory (downloaded once) and its input columns in fitted order."""
    import mlflow.artifacts

    from mlplatform.registry.lineage import Lineage
    from mlplatform.registry.mlflow_registry import CHAMPION, ModelRegistry, mlflow_client

    champion = ModelRegistry(settings).alias_holder(MODEL, CHAMPION)
    assert champion is not None
    model_inputs = json.loads(mlflow_client(settings).get_run(str(champion.run_id)).data.tags[Lineage.MODEL_INPUTS_TAG])
    target = WORLD / f"model-v{champion.version}"
    if not (target / "MLmodel").is_file():
        mlflow.artifacts.download_artifacts(
            f"models:/{MODEL}/{champion.version}",
            dst_path=str(target),
            tracking_uri=settings.mlflow.resolved_tracking_uri(),
        )
    return str(target), model_inputs
