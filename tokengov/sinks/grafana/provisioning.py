"""Grafana provisioning files, generated from the same definitions ``sync`` uses.

docker-compose mounts ``grafana/provisioning`` at ``/etc/grafana/provisioning`` and
``grafana/dashboards`` at :data:`DASHBOARDS_MOUNT`.
"""

from __future__ import annotations

from typing import Any, Final

from tokengov.sinks.grafana.dashboards.pipeline import PROMETHEUS_UID
from tokengov.sinks.grafana.datasource import ClickHouseDatasource

__all__ = [
    "DASHBOARDS_MOUNT",
    "FOLDER_TITLE",
    "FOLDER_UID",
    "PASSWORD_ENV",
    "PROVISIONED_DATASOURCE",
    "dashboard_provider",
    "datasource_file",
    "prometheus_datasource_file",
]

FOLDER_UID: Final = "tokengov"
FOLDER_TITLE: Final = "tokengov"
DASHBOARDS_MOUNT: Final = "/var/lib/grafana/dashboards/tokengov"
# Environment variable of the Grafana container holding the read-only ClickHouse password.
PASSWORD_ENV: Final = "TOKENGOV_GRAFANA_CLICKHOUSE_PASSWORD"  # noqa: S105 - a name

# The compose stack: Grafana reads the `clickhouse` service over the native protocol as the
# read-only `grafana_reader` user (deploy/clickhouse/users.d/tokengov.xml).
PROVISIONED_DATASOURCE: Final = ClickHouseDatasource(
    host="clickhouse",
    port=9000,
    protocol="native",
    secure=False,
    username="grafana_reader",
    password=None,
    database="tokengov",
)


def datasource_file(datasource: ClickHouseDatasource = PROVISIONED_DATASOURCE) -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "datasources": [datasource.provisioning(password_env=PASSWORD_ENV)],
    }


def prometheus_datasource_file() -> dict[str, Any]:
    """The Prometheus data source of the "tokengov pipeline" dashboard: docker-compose's
    ``prometheus`` service, which scrapes every tokengov process (deploy/prometheus)."""
    return {
        "apiVersion": 1,
        "datasources": [
            {
                "name": "tokengov Prometheus",
                "uid": PROMETHEUS_UID,
                "type": "prometheus",
                "access": "proxy",
                "url": "http://prometheus:9090",
                "editable": False,
                "jsonData": {"httpMethod": "POST", "timeInterval": "15s"},
            }
        ],
    }


def dashboard_provider() -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "providers": [
            {
                "name": "tokengov",
                "orgId": 1,
                "folder": FOLDER_TITLE,
                "folderUid": FOLDER_UID,
                "type": "file",
                "disableDeletion": True,
                "allowUiUpdates": False,
                "updateIntervalSeconds": 60,
                "options": {"path": DASHBOARDS_MOUNT, "foldersFromFilesStructure": False},
            }
        ],
    }
