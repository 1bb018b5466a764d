"""Grafana: dashboards as code, provisioning files, and sync to a running Grafana.

- :mod:`sinks.grafana.dashboards` — the four dashboards (grafana-foundation-sdk builders);
- :mod:`sinks.grafana.sql` — every panel's SQL; :mod:`sinks.grafana.macros` expands it as
  Grafana does, for tests;
- :mod:`sinks.grafana.render` — ``tokengov grafana build`` (``write`` / drift ``check``);
- :mod:`sinks.grafana.client` — the typed grafana-client adapter;
  :mod:`sinks.grafana.sync` — ``tokengov grafana sync`` (``sync``).

(The submodules ``render`` and ``sync`` are not shadowed by re-exported functions.)
"""

from sinks.grafana.alert_marks import AlertMark, read_alert_marks
from sinks.grafana.client import Annotation, DashboardRef, GrafanaAPI
from sinks.grafana.dashboards import DASHBOARDS, DashboardSpec, to_model
from sinks.grafana.datasource import ClickHouseDatasource
from sinks.grafana.errors import (
    GrafanaAPIError,
    GrafanaAuthError,
    GrafanaConfigError,
    GrafanaError,
    GrafanaUnreachable,
    GrafanaVersionError,
)
from sinks.grafana.sync import SyncReport

__all__ = [
    "DASHBOARDS",
    "AlertMark",
    "Annotation",
    "ClickHouseDatasource",
    "DashboardRef",
    "DashboardSpec",
    "GrafanaAPI",
    "GrafanaAPIError",
    "GrafanaAuthError",
    "GrafanaConfigError",
    "GrafanaError",
    "GrafanaUnreachable",
    "GrafanaVersionError",
    "SyncReport",
    "read_alert_marks",
    "to_model",
]
