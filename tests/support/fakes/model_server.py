"""Model server entry points that only answer HTTP (a fake: the real servers load a model from MLflow and read
Feast, which tests/integration/test_deploy_local.py runs).  They let the local deployer's own behaviour (ports,
records, supervision, the Prometheus targets file) be tested with real processes in a second each.

``write_fake_servers(folder)`` writes ``kserve/server.py`` and ``bentoml/service.py`` there (use the folder as
``serving.servers_dir``).  Each binds ``MLP_SERVING__HOST``:``MLP_SERVING__PORT`` as the real ones do, says ready on
both backends' readiness paths, exports one metric without a ``model`` label on ``/metrics``, and answers any POST
with its model and port.
"""

from __future__ import annotations

from pathlib import Path

SERVER = """
import http.server
import json
import os
import sys

MODEL = sys.argv[sys.argv.index("--model") + 1]
HOST = os.environ["MLP_SERVING__HOST"]
PORT = int(os.environ["MLP_SERVING__PORT"])
READY = {"/readyz", f"/v2/models/{MODEL}/ready"}


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path in READY:
            self._send(200, "application/json", json.dumps({"ready": True}))
        elif self.path == "/metrics":
            self._send(200, "text/plain; version=0.0.4", "# TYPE fake_server_up gauge\\nfake_server_up 1\\n")
        else:
            self._send(404, "text/plain", "not found")

    def do_POST(self) -> None:
        self._send(200, "application/json", json.dumps({"model": MODEL, "port": PORT}))

    def _send(self, status: int, kind: str, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


http.server.ThreadingHTTPServer.allow_reuse_address = True
http.server.ThreadingHTTPServer((HOST, PORT), Handler).serve_forever()
"""


def write_fake_servers(folder: Path) -> Path:
    """Both backends' entry points under ``folder``; returns ``folder``."""
    for entry in ("kserve/server.py", "bentoml/service.py"):
        path = folder / entry
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(SERVER)
    return folder
