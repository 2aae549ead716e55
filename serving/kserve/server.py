"""KServe model server for one platform model (entry point; the adaptation is ``mlplatform.serving.adapters.kserve``).

Run: ``python serving/kserve/server.py --model fraud_detector`` (settings from ``MLP_*`` variables, see
``mlplatform.config``).  Request formats and status codes are documented in ``serving/kserve/README.md``.
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys


def main(argv: list[str] | None = None) -> int:
    """Load the model named by ``--model`` and serve it until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(description="KServe model server for one mlplatform model")
    parser.add_argument("--model", required=True, help="registered model name (its spec must exist)")
    args, _ = parser.parse_known_args(argv)  # KServe parses its own flags from sys.argv on import
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per registry poll otherwise

    from mlplatform.config import get_settings
    from mlplatform.serving.adapters.kserve import serve
    from mlplatform.serving.predictor import Predictor

    predictor = Predictor(get_settings(), args.model)
    predictor.start()
    gc.freeze()  # the loaded model and libraries are long-lived: keep them out of every later GC pass
    serve(predictor)
    return 0


if __name__ == "__main__":
    sys.exit(main())
