"""Baseline: what a user wires by hand with stock BentoML, the Feast SDK and the scikit-learn model.

Run by the benchmark as ``bentoml serve stock_bentoml:StockService --port N`` from this directory, with
``MLP_*`` settings for Feast, ``STOCK_MODEL_DIR`` and ``STOCK_MODEL_INPUTS`` (comma-separated, fitted order) in the
environment.  ``POST /predict {"entities": [{"customer_id": ..., "amount": ...}]}``: an ``@bentoml.api`` method
(BentoML's defaults: request validation, thread pool, access log, metrics, tracing) that calls
``FeatureStore.get_online_features`` and ``predict_proba`` on a DataFrame.  Nothing here is the platform's
serving code; the benchmark compares the platform's servers against it.
"""

from __future__ import annotations

import os
from typing import Any

import bentoml

SERVICE = "fraud_detector_v1"


@bentoml.service(name="stock-fraud-detector", workers=1)
class StockService:
    def __init__(self) -> None:
        import mlflow.sklearn

        from mlplatform.config import get_settings
        from mlplatform.features.store import FeatureStoreAdapter

        self.store = FeatureStoreAdapter(get_settings()).store
        self.service = self.store.get_feature_service(SERVICE)
        self.model = mlflow.sklearn.load_model(os.environ["STOCK_MODEL_DIR"])
        self.inputs = os.environ["STOCK_MODEL_INPUTS"].split(",")

    @bentoml.api
    def predict(self, entities: list[dict[str, Any]]) -> dict[str, Any]:
        import pandas as pd

        features = self.store.get_online_features(features=self.service, entity_rows=entities).to_dict()
        columns = {name: features[name] if name in features else [e[name] for e in entities] for name in self.inputs}
        probabilities = self.model.predict_proba(pd.DataFrame(columns, dtype=float))[:, 1]
        return {"predictions": probabilities.tolist()}
