"""The baseline: the same model served bare (features inline, no feature store, no logging, no metrics).

Usage: python benchmarks/bare_server.py MODEL_DIR --port 8399 [--stock-predict]
POST /predict {"features": [[...], ...]} -> {"probabilities": [...]}.  What is left is the HTTP stack and the
model, so the platform's servers can be reported as a ratio of this.  The model scores the way the platform's
Predictor scores it (compiled trees where exact), so the ratio measures the platform's overhead, not a faster
model; ``--stock-predict`` uses scikit-learn's ``predict_proba`` instead, as a hand-written server would.
"""

from __future__ import annotations

import argparse
import gc
from pathlib import Path
from typing import Any

import numpy as np


def build_app(score: Any) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def predict(request: Request) -> JSONResponse:
        body = await request.json()
        features = np.asarray(body["features"], dtype=np.float64)
        return JSONResponse({"probabilities": score(features).tolist()})

    async def ready(_: Request) -> JSONResponse:
        return JSONResponse({"ready": True})

    return Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/readyz", ready)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--stock-predict", action="store_true", help="score with scikit-learn's predict_proba")
    args = parser.parse_args()
    import warnings

    import uvicorn
    from threadpoolctl import threadpool_limits

    # The model was fitted on a DataFrame; plain arrays are fine but sklearn would warn on every call.
    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    threadpool_limits(1)
    from mlplatform.training.estimators import load_estimator

    model = load_estimator(Path(args.model_dir))
    if args.stock_predict:
        score = lambda rows: model.predict_proba(rows)[:, 1]  # noqa: E731
    else:
        from mlplatform.serving.compiled_trees import positive_scorer

        score, _ = positive_scorer(model, "bare")
    gc.freeze()
    uvicorn.run(build_app(score), host="127.0.0.1", port=args.port, access_log=False, log_level="warning")


if __name__ == "__main__":
    main()
