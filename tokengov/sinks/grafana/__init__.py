"""Grafana: dashboards as code, provisioning files, and sync to a running Grafana.

- :mod:`tokengov.sinks.grafana.dashboards` — the four dashboards (grafana-foundation-sdk builders);
- :mod:`tokengov.sinks.grafana.sql` — every panel's SQL; :mod:`tokengov.sinks.grafana.macros` expands it as
  Grafana does, for tests;
- :mod:`tokengov.sinks.grafana.render` — ``tokengov grafana build`` (``write`` / drift ``check``);
- :mod:`tokengov.sinks.grafana.client` — the typed grafana-client adapter;
  :mod:`tokengov.sinks.grafana.sync` — ``tokengov grafana sync`` (``sync``).

(The submodules ``render`` and ``sync`` are not shadowed by re-exported functions.)
"""

from tokengov.sinks.grafana.alert_marks import AlertMark, read_alert_marks
from tokengov.sinks.grafana.client import Annotation, DashboardRef, GrafanaAPI
from tokengov.sinks.grafana.dashboards import DASHBOARDS, DashboardSpec, to_model
from tokengov.sinks.grafana.datasource import ClickHouseDatasource
from tokengov.sinks.grafana.errors import (
    GrafanaAPIError,
    GrafanaAuthError,
    GrafanaConfigError,
    GrafanaError,
    GrafanaUnreachable,
    GrafanaVersionError,
)
from tokengov.sinks.grafana.sync import SyncReport

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
