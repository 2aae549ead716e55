"""The baseline: the same model served bare (features inline, no feature store, no logging, no metrics).

Usage: python benchmarks/bare_server.py MODEL_DIR --port 8399
POST /predict {"features": [[...], ...]} -> {"probabilities": [...]}.  What is left is the HTTP stack and the
model, so the platform's servers can be reported as a ratio of this.
"""

from __future__ import annotations

import argparse
import gc
from typing import Any

import numpy as np


def build_app(model: Any) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def predict(request: Request) -> JSONResponse:
        body = await request.json()
        features = np.asarray(body["features"], dtype=np.float64)
        return JSONResponse({"probabilities": model.predict_proba(features)[:, 1].tolist()})

    async def ready(_: Request) -> JSONResponse:
        return JSONResponse({"ready": True})

    return Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/readyz", ready)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    import warnings

    import mlflow.sklearn
    import uvicorn
    from threadpoolctl import threadpool_limits

    # The model was fitted on a DataFrame; plain arrays are fine but sklearn would warn on every call.
    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    threadpool_limits(1)
    model = mlflow.sklearn.load_model(args.model_dir)
    gc.freeze()
    uvicorn.run(build_app(model), host="127.0.0.1", port=args.port, access_log=False, log_level="warning")


if __name__ == "__main__":
    main()
