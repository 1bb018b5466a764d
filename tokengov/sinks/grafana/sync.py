"""``tokengov grafana sync``: bring a running Grafana up to date with tokengov.

Creates or updates the folder, the ClickHouse data source (when given) and every dashboard,
then posts one annotation per alert not yet annotated. Safe to run again and again: the
dashboards are overwritten by uid, annotations are skipped by their ``alert_id:`` tag.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tokengov.sinks.grafana.alert_marks import AlertMark, alert_id_of
from tokengov.sinks.grafana.client import GrafanaAPI, Upsert
from tokengov.sinks.grafana.dashboards import ALERT_TAG, DASHBOARDS, DashboardSpec, to_model
from tokengov.sinks.grafana.datasource import ClickHouseDatasource
from tokengov.sinks.grafana.errors import GrafanaAPIError
from tokengov.sinks.grafana.panels import DATASOURCE_UID
from tokengov.sinks.grafana.provisioning import FOLDER_TITLE, FOLDER_UID

__all__ = ["SyncReport", "sync"]

log = logging.getLogger(__name__)

# Grafana answers at most this many annotations per query; a sync window holding more
# alerts than that is split in halves until each half fits.
_PAGE = 5000


@dataclass
class SyncReport:
    grafana_version: str
    folder: Upsert
    datasource: Upsert | None
    datasource_present: bool
    dashboards: list[str] = field(default_factory=list)
    annotations_posted: int = 0
    annotations_already_there: int = 0


def _annotated_alert_ids(api: GrafanaAPI, since: datetime, until: datetime) -> set[str]:
    found = api.find_annotations(tags=[ALERT_TAG], since=since, until=until, limit=_PAGE)
    if len(found) >= _PAGE:
        if until - since <= timedelta(seconds=1):
            raise GrafanaAPIError(
                200, f"more than {_PAGE} tokengov annotations within one second at {since}"
            )
        middle = since + (until - since) / 2
        return _annotated_alert_ids(api, since, middle) | _annotated_alert_ids(api, middle, until)
    return {alert_id for a in found if (alert_id := alert_id_of(a.tags)) is not None}


def sync(
    api: GrafanaAPI,
    *,
    alerts: Sequence[AlertMark],
    now: datetime,
    datasource: ClickHouseDatasource | None = None,
    dashboards: Sequence[DashboardSpec] = DASHBOARDS,
) -> SyncReport:
    """Push folder, data source, dashboards and alert annotations; return what was done."""
    version = api.version()
    report = SyncReport(
        grafana_version=".".join(map(str, version)),
        folder=api.ensure_folder(FOLDER_UID, FOLDER_TITLE),
        datasource=api.upsert_datasource(datasource) if datasource is not None else None,
        datasource_present=True,
    )
    if datasource is None:
        report.datasource_present = api.datasource_exists(DATASOURCE_UID)
        if not report.datasource_present:
            log.warning(
                "Grafana has no data source with uid %r: the dashboards will show no data until "
                "it is provisioned or synced with --datasource-url",
                DATASOURCE_UID,
            )
    for spec in dashboards:
        ref = api.upsert_dashboard(
            to_model(spec.build()), folder_uid=FOLDER_UID, message="tokengov grafana sync"
        )
        report.dashboards.append(ref.uid)
        log.info("dashboard %s saved (version %d) %s", ref.uid, ref.version, ref.url)

    if alerts:
        since = min(a.starts_at for a in alerts)
        until = max(now, max(a.starts_at for a in alerts)) + timedelta(seconds=1)
        done = _annotated_alert_ids(api, since, until)
        for mark in alerts:
            if mark.alert_id in done:
                report.annotations_already_there += 1
                continue
            api.create_annotation(mark.annotation())
            done.add(mark.alert_id)
            report.annotations_posted += 1
    return report
