"""Alerts as Grafana annotations: read from ClickHouse, tagged so a second sync skips them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from tokengov.core.errors import QueryError
from tokengov.sinks.grafana.client import Annotation
from tokengov.sinks.grafana.dashboards import ALERT_TAG
from tokengov.sinks.grafana.sql import ALERTS_FOR_ANNOTATIONS

__all__ = ["ALERT_ID_TAG", "AlertMark", "AlertQuery", "alert_id_of", "read_alert_marks"]

AlertQuery = Callable[[str, dict[str, Any]], Iterable[Mapping[str, Any]]]

ALERT_ID_TAG: Final = "alert_id:"
# Grafana stores a tag's key and value in columns of at most 100 characters each.
_MAX_TAG_VALUE: Final = 100


@dataclass(frozen=True)
class AlertMark:
    """The part of an alert a chart annotation shows."""

    alert_id: str
    fingerprint: str
    kind: str
    severity: str
    team: str
    workflow: str | None
    summary: str
    starts_at: datetime
    ends_at: datetime | None

    def annotation(self) -> Annotation:
        tags = [
            ALERT_TAG,
            f"{ALERT_ID_TAG}{self.alert_id}",
            f"kind:{self.kind}",
            f"severity:{self.severity}",
            f"team:{self.team}",
        ]
        if self.workflow:
            tags.append(f"workflow:{self.workflow}")
        if len(self.fingerprint) <= _MAX_TAG_VALUE:
            tags.append(f"fingerprint:{self.fingerprint}")
        return Annotation(
            time=self.starts_at,
            time_end=self.ends_at if self.ends_at and self.ends_at > self.starts_at else None,
            tags=tuple(tags),
            text=f"[{self.severity}] {self.kind} · {self.team}: {self.summary}",
        )


def alert_id_of(tags: tuple[str, ...]) -> str | None:
    for tag in tags:
        if tag.startswith(ALERT_ID_TAG):
            return tag.removeprefix(ALERT_ID_TAG)
    return None


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime from ClickHouse, got {value!r}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def read_alert_marks(query: AlertQuery, since: datetime) -> list[AlertMark]:
    """Alerts that started at or after ``since``, one per alert_id.

    ``query(sql, parameters)`` runs a statement with server-side parameters on the store and
    returns its rows as mappings (clickhouse-connect's ``named_results()``, or the
    ClickHouse store's ``dicts()``).
    """
    marks: list[AlertMark] = []
    for row in query(ALERTS_FOR_ANNOTATIONS, {"since": since.astimezone(UTC)}):
        starts_at = _utc(row["first_start"])
        if starts_at is None:
            raise QueryError(f"alert {row['alert_id']}: no starts_at")
        marks.append(
            AlertMark(
                alert_id=str(row["alert_id"]),
                fingerprint=str(row["last_fingerprint"]),
                kind=str(row["last_kind"]),
                severity=str(row["last_severity"]),
                team=str(row["last_team"]),
                workflow=row["last_workflow"] or None,
                summary=str(row["last_summary"]),
                starts_at=starts_at,
                ends_at=_utc(row["last_end"]),
            )
        )
    return marks
