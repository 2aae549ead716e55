"""Alert thresholds: the one place their values are written down.

Prometheus rule files cannot read the platform's settings, so each threshold also appears as a literal in
``monitoring/prometheus/rules/*.yaml`` (with a comment naming the constant) and in its runbook;
``tests/monitoring`` fails when a rule, a runbook or a dashboard's threshold line disagrees with the value here.
Change a value here, then in the rule file, the rule's promtool test and the runbook.
"""

from __future__ import annotations

from typing import Final

from mlplatform.specs import DEFAULT_DRIFT_MIN_ROWS, DEFAULT_DRIFT_SHARE

SERVING_P99_SLO_SECONDS: Final = 0.05
"""Latency objective of a model server: p99 of the whole request (stage ``total``) under 50 ms.

Measured: the KServe server keeps p99 at 7-12 ms at 200 requests/s on one core, so 50 ms leaves room for batches
and a busier online store while still catching a tail that the callers (card authorisation) would feel.
"""

SERVING_ERROR_RATIO: Final = 0.01
"""Share of requests a model server may fail (outcomes ``error`` and ``unavailable``) before it alerts: 1 %.

Client mistakes (``invalid``, ``too_large``, rows rejected in a ``partial`` answer) do not count.
"""

SERVING_MIN_REQUEST_RATE: Final = 0.1
"""Requests per second below which latency and error alerts stay quiet (30 requests in the 5-minute window).

Below it, a p99 is the single slowest request and one failure is several percent: noise, not a trend.
"""

DATASET_DRIFT_SHARE: Final = DEFAULT_DRIFT_SHARE
"""Share of drifted features at which a data set counts as drifted (Evidently's ``DataDriftPreset`` default).

The drift check applies it (or the model spec's own value) when it sets ``mlplatform_dataset_drift``; the rule
alerts on that verdict so a per-model threshold is honoured, and dashboards draw this value as the line.  The
value is written in ``mlplatform.specs`` (the spec's default ``monitoring.drift_share``), which sits below this
package.
"""

DRIFT_MIN_ROWS: Final = DEFAULT_DRIFT_MIN_ROWS
"""Drift verdicts on fewer current rows than this do not alert: tiny samples make every test noisy.

Also the model spec's default ``monitoring.min_rows``, which is why its value is written in ``mlplatform.specs``.
"""

DRIFT_CHECK_MAX_AGE_SECONDS: Final = 90_000
"""25 hours without a successful drift check: a daily check missed once, plus an hour of slack."""

ONLINE_FEATURES_MAX_AGE_SECONDS: Final = 21_600
"""6 hours of materialization lag: the rolling transaction aggregates lose their meaning within hours."""

QUALITY_DROP_RATIO: Final = 1.2
"""The champion's online loss (log loss, top-label Brier, MAE) this many times its value a day earlier: a quality
drop the data alone may not show (concept drift), worth a retrain.  20 % is well beyond a day's noise at the
minimum sample below, yet a real drop in fraud detection is caught within a day of its labels."""

QUALITY_MIN_LABELLED: Final = 100
"""Online quality measured on fewer labelled predictions than this does not alert."""

RUNBOOK_BASE_URL: Final = "docs/runbooks"
"""Where ``runbook_url`` annotations point: ``<RUNBOOK_BASE_URL>/<alertname>.md``.

A path relative to the repository root, because the repository has no canonical web address; a deployment that
publishes the docs (the Helm chart) rewrites the prefix to its own URL.
"""
