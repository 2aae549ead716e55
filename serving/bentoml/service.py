"""BentoML model server for one platform model (entry point; the service is ``mlplatform.serving.adapters.bentoml``).

Run: ``python serving/bentoml/service.py --model fraud_detector`` (binds ``settings.serving.host``/``port``), or
``MLPLATFORM_SERVE_MODEL=fraud_detector bentoml serve serving/bentoml/service.py:ModelService``.
Formats and status codes: ``serving/bentoml/README.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mlplatform.serving.adapters.bentoml import MODEL_ENV, ModelService

__all__ = ["ModelService"]  # what ``bentoml serve service:ModelService`` and bentofile.yaml name


def main(argv: list[str] | None = None) -> int:
    """Serve with BentoML on ``settings.serving.host``/``port`` (replaces this process)."""
    parser = argparse.ArgumentParser(description="BentoML model server for one mlplatform model")
    parser.add_argument("--model", required=True, help="registered model name (its spec must exist)")
    args = parser.parse_args(argv)

    from mlplatform.config import get_settings

    serving = get_settings().serving
    os.environ[MODEL_ENV] = args.model
    here = str(Path(__file__).resolve().parent)
    command = [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        "service:ModelService",
        "--working-dir",
        here,
        "--host",
        serving.host,
        "--port",
        str(serving.port),
    ]
    os.execv(sys.executable, command)  # noqa: S606 - fixed argv, no shell
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
