"""Baseline: what a user wires by hand with stock KServe, the Feast SDK and the scikit-learn model.

Usage: python benchmarks/stock_kserve.py MODEL_DIR --http_port 8390 --grpc_port 8391
(settings for Feast from ``MLP_*`` variables).  A ``kserve.Model`` whose ``predict`` calls
``FeatureStore.get_online_features`` for the request's entities and ``predict_proba`` on a DataFrame, served by
KServe's own ``ModelServer`` with its defaults (access log, timing log, gRPC).  v1 protocol:
``POST /v1/models/fraud_detector:predict {"instances": [{"customer_id": ..., "amount": ...}]}``.
Nothing here is the platform's serving code; the benchmark compares the platform's servers against it.
"""

from __future__ import annotations

import argparse
from typing import Any

MODEL = "fraud_detector"
SERVICE = "fraud_detector_v1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir")
    parser.add_argument("--inputs", required=True, help="comma-separated model input columns in fitted order")
    args, _ = parser.parse_known_args()  # KServe parses --http_port and --grpc_port itself, on import

    import kserve
    import mlflow.sklearn
    import pandas as pd

    from mlplatform.config import get_settings
    from mlplatform.features.store import FeatureStoreAdapter

    store = FeatureStoreAdapter(get_settings()).store
    service = store.get_feature_service(SERVICE)
    model = mlflow.sklearn.load_model(args.model_dir)
    inputs = args.inputs.split(",")

    class StockModel(kserve.Model):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(MODEL)
            self.ready = True

        def predict(self, payload: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
            rows = payload["instances"]
            features = store.get_online_features(features=service, entity_rows=rows).to_dict()
            columns = {name: features[name] if name in features else [row[name] for row in rows] for name in inputs}
            probabilities = model.predict_proba(pd.DataFrame(columns, dtype=float))[:, 1]
            return {"predictions": probabilities.tolist()}

    kserve.ModelServer().start([StockModel()])


if __name__ == "__main__":
    main()
