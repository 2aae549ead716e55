"""Monitoring, the observing half: drift, the metric names the platform exports, alert thresholds, dashboards.

Acting on what is observed (the retrain policy and its Alertmanager webhook) is ``mlplatform.retraining``, which may
import this package; nothing here imports it.

The static assets under ``monitoring/`` (Prometheus rules, Alertmanager configuration, dashboard JSON) are checked
against this package by ``tests/monitoring``, so a renamed metric or a moved threshold fails a test instead of
silently breaking an alert.
"""
