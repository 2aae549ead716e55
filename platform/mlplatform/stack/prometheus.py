"""Prometheus and Alertmanager of the embedded stack: found binaries, rendered configuration, command lines.

Both are optional (Debian packages ``prometheus`` and ``prometheus-alertmanager``); ``stack up`` starts them when
installed and says so when not.  Their configuration is rendered from the committed ``monitoring/`` files under
the state directory (paths from ``mlplatform.state.StateLayout``)::

    prometheus/prometheus.yml                scrape the platform API and model servers, the committed rule files
    prometheus/model_servers.json            the locally deployed model servers (file_sd), one target per model
    prometheus/data/                         the TSDB
    alertmanager/alertmanager.yml            the committed routing, webhook URL pointed at this stack's API
    alertmanager/platform_webhook_token      the webhook's bearer token (mode 0600), the config's credentials_file
    alertmanager/data/                       silences and notification log

Both listen on 127.0.0.1 on their own ports (9490/9493 by default, not the 9090/9093 a distribution's own
daemons use), and Alertmanager's cluster listener (0.0.0.0:9094 by default) is switched off: a single instance.

Model servers come and go while Prometheus runs: the local deployer rewrites ``model_servers.json`` on every deploy
and undeploy (``write_model_server_targets``), and Prometheus re-reads a ``file_sd`` file when it changes, without
a restart or a reload.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlplatform.config import Settings
from mlplatform.state import write_private

PROMETHEUS = "prometheus"
ALERTMANAGER = "alertmanager"
ALERTMANAGER_NAMES = ("alertmanager", "prometheus-alertmanager")  # upstream's name, Debian's name
WEBHOOK_RECEIVER = "platform-webhook"
WEBHOOK_PATH = "/api/v1/alerts/alertmanager"


@dataclass(frozen=True)
class MonitoringBinaries:
    """Where the installed binaries are; None for one that is not installed (or switched off)."""

    prometheus: str | None
    alertmanager: str | None


@dataclass(frozen=True)
class ServerTarget:
    """One locally deployed model server as Prometheus scrapes it."""

    model: str
    backend: str
    address: str
    """``host:port`` of the server's HTTP listener (its ``/metrics`` is scraped)."""


def find_binaries(settings: Settings) -> MonitoringBinaries:
    conf = settings.prometheus
    if not conf.enabled:
        return MonitoringBinaries(None, None)
    names = (conf.alertmanager_binary,) if conf.alertmanager_binary else ALERTMANAGER_NAMES
    alertmanager = next((found for name in names if (found := shutil.which(name))), None)
    return MonitoringBinaries(shutil.which(conf.prometheus_binary), alertmanager)


def why_skipped(settings: Settings, binaries: MonitoringBinaries) -> str:
    """What ``stack up`` says when it does not start them."""
    if not settings.prometheus.enabled:
        return "switched off (MLP_PROMETHEUS__ENABLED=false)"
    found = (("prometheus", binaries.prometheus), ("alertmanager", binaries.alertmanager))
    missing = [name for name, path in found if path is None]
    return f"{' and '.join(missing)} not installed (Debian packages prometheus, prometheus-alertmanager)"


def prometheus_url(settings: Settings) -> str:
    return f"http://{settings.prometheus.host}:{settings.prometheus.port}"


def alertmanager_url(settings: Settings) -> str:
    return f"http://{settings.prometheus.host}:{settings.prometheus.alertmanager_port}"


def local_host(host: str) -> str:
    """The address a local client reaches a server bound to ``host`` at (a wildcard bind answers on loopback)."""
    return host if host not in ("0.0.0.0", "::") else "127.0.0.1"  # noqa: S104


def _api_address(settings: Settings) -> str:
    """Where the stack's API answers locally: Prometheus scrapes it and Alertmanager posts to it."""
    return f"{local_host(settings.api.host)}:{settings.api.port}"


def prometheus_config(settings: Settings, rule_files: list[Path] | None = None) -> dict[str, Any]:
    """Scrape jobs for the platform API and the model servers, the rule files, and the stack's Alertmanager.

    The model servers are the deployer's targets file (every local deployment, labelled with its model) plus any
    ``prometheus.model_server_targets`` set by hand.  ``honor_labels``: a server's own ``model`` label on its
    samples is kept as it is, and the target's ``model`` label fills in only where a sample has none.
    ``rule_files`` defaults to the committed rules; tests pass a rendered copy (e.g. with a shorter ``for``).
    """
    conf = settings.prometheus
    evaluation = conf.evaluation_interval_s or conf.scrape_interval_s
    rules = rule_files if rule_files is not None else sorted((conf.config_dir / "prometheus" / "rules").glob("*.yaml"))
    serving: dict[str, Any] = {
        "job_name": "mlplatform-serving",
        "honor_labels": True,
        "file_sd_configs": [{"files": [str(settings.layout.prometheus_targets)]}],
    }
    if conf.model_server_targets:
        serving["static_configs"] = [{"targets": conf.model_server_targets}]
    return {
        "global": {"scrape_interval": f"{conf.scrape_interval_s}s", "evaluation_interval": f"{evaluation}s"},
        "rule_files": [str(path) for path in rules],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"{conf.host}:{conf.alertmanager_port}"]}]}]},
        "scrape_configs": [
            {"job_name": "mlplatform-api", "static_configs": [{"targets": [_api_address(settings)]}]},
            serving,
        ],
    }


def model_server_targets(servers: Iterable[ServerTarget]) -> list[dict[str, Any]]:
    """The ``file_sd`` document: one target group per server, labelled with its model and backend."""
    return [
        {"targets": [server.address], "labels": {"model": server.model, "backend": server.backend}}
        for server in sorted(servers, key=lambda server: server.model)
    ]


def write_model_server_targets(settings: Settings, servers: Iterable[ServerTarget]) -> Path:
    """Replace the targets file in one rename, so Prometheus never reads half of it."""
    path = settings.layout.prometheus_targets
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.tmp")
    partial.write_text(json.dumps(model_server_targets(servers), indent=2) + "\n")
    partial.replace(path)
    return path


def alertmanager_config(settings: Settings, committed: dict[str, Any]) -> dict[str, Any]:
    """The committed configuration with the platform webhook pointed at this stack's API (token file unchanged), and
    the webhook route's ``group_wait`` / ``group_interval`` where ``prometheus.webhook_group_wait_s`` /
    ``webhook_group_interval_s`` set them (the demo's shorter waits; unset, the committed values stand)."""
    config: dict[str, Any] = yaml.safe_load(yaml.safe_dump(committed))
    timing = {
        key: f"{seconds}s"
        for key, seconds in (
            ("group_wait", settings.prometheus.webhook_group_wait_s),
            ("group_interval", settings.prometheus.webhook_group_interval_s),
        )
        if seconds is not None
    }
    for route in config.get("route", {}).get("routes", []):
        if route.get("receiver") == WEBHOOK_RECEIVER:
            route.update(timing)
    for receiver in config.get("receivers", []):
        if receiver.get("name") != WEBHOOK_RECEIVER:
            continue
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = f"http://{_api_address(settings)}{WEBHOOK_PATH}"
    return config


def write_prometheus_config(settings: Settings, rule_files: list[Path] | None = None) -> Path:
    """The rendered configuration; an empty targets file beside it when no deploy has written one yet."""
    layout = settings.layout
    layout.prometheus_data.mkdir(parents=True, exist_ok=True)
    if not layout.prometheus_targets.exists():
        write_model_server_targets(settings, [])
    path = layout.prometheus_config
    path.write_text(_header() + yaml.safe_dump(prometheus_config(settings, rule_files), sort_keys=False))
    return path


def committed_alertmanager_config(config_dir: Path) -> dict[str, Any]:
    """The repository's Alertmanager configuration under ``config_dir`` (``prometheus.config_dir``), as committed."""
    committed: dict[str, Any] = yaml.safe_load((config_dir / "alertmanager" / "alertmanager.yml").read_text())
    return committed


def write_alertmanager_config(settings: Settings, token: str) -> Path:
    """The rendered configuration and, beside it, the webhook token file it names (0600 from the first byte)."""
    layout = settings.layout
    layout.alertmanager_data.mkdir(parents=True, exist_ok=True)
    committed = committed_alertmanager_config(settings.prometheus.config_dir)
    write_private(layout.alertmanager_webhook_token, token + "\n")
    path = layout.alertmanager_config
    path.write_text(_header() + yaml.safe_dump(alertmanager_config(settings, committed), sort_keys=False))
    return path


def _header() -> str:
    return "# Rendered by `mlplatform stack up` from the repository's monitoring/ files; edits are overwritten.\n"


def prometheus_argv(binary: str, settings: Settings, config: Path) -> list[str]:
    return [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={settings.layout.prometheus_data}",
        f"--web.listen-address={settings.prometheus.host}:{settings.prometheus.port}",
        f"--web.external-url={prometheus_url(settings)}",
    ]


def alertmanager_argv(binary: str, settings: Settings, config: Path) -> list[str]:
    return [
        binary,
        f"--config.file={config}",
        f"--storage.path={settings.layout.alertmanager_data}",
        f"--web.listen-address={settings.prometheus.host}:{settings.prometheus.alertmanager_port}",
        f"--web.external-url={alertmanager_url(settings)}",
        "--cluster.listen-address=",  # no gossip listener on 0.0.0.0:9094: one instance, loopback only
    ]


def monitoring_env() -> dict[str, str]:
    """A minimal environment: these daemons need none of the platform's settings (nor its secrets)."""
    return {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG", "TZ")}
