"""KServe model server for one platform model (entry point; the adaptation is ``mlplatform.serving.adapters.kserve``).

Run: ``python serving/kserve/server.py --model fraud_detector`` (settings from ``MLP_*`` variables, see
``mlplatform.config``).  Request formats and status codes are documented in ``serving/kserve/README.md``.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """Load the model named by ``--model`` and serve it until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(description="KServe model server for one mlplatform model")
    parser.add_argument("--model", required=True, help="registered model name (its spec must exist)")
    args, _ = parser.parse_known_args(argv)  # KServe parses its own flags from sys.argv on import

    from mlplatform import logs
    from mlplatform.config import get_settings

    settings = get_settings()
    logs.configure(settings.log, fields={"model": args.model})  # every line names the model it serves

    from mlplatform.serving.adapters.kserve import serve
    from mlplatform.serving.predictor import Predictor
    from mlplatform.serving.process import settle_server_process

    predictor = Predictor(settings, args.model)
    predictor.start()
    settle_server_process(settings)
    serve(predictor)
    return 0


if __name__ == "__main__":
    sys.exit(main())
