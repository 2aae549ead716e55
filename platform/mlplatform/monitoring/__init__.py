"""Monitoring: the metric names the platform exports, alert thresholds, and the Grafana dashboards built from them.

The static assets under ``monitoring/`` (Prometheus rules, Alertmanager configuration, dashboard JSON) are checked
against this package by ``tests/monitoring``, so a renamed metric or a moved threshold fails a test instead of
silently breaking an alert.
"""
