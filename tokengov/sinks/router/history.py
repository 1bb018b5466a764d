"""On-call's view of the history: alerts and their notifications, read from ClickHouse
(tables ``alerts`` and ``notifications``) through a :class:`tokengov.sinks.clickhouse.reader.Reader`:
the running worker's query endpoint when it owns the embedded store, else the store (or
ClickHouse server) itself.

The statements are built by small functions (unit-tested as strings) and run with
server-side parameters, never string interpolation of user input.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from tokengov.sinks.clickhouse.reader import Reader, open_reader

__all__ = ["AlertHistory", "AlertRow", "NotificationRow", "list_alerts_sql", "notifications_sql"]

_ALERT_COLUMNS = (
    "alert_id",
    "fingerprint",
    "kind",
    "severity",
    "status",
    "team",
    "workflow",
    "task_id",
    "summary",
    "evidence",
    "labels",
    "starts_at",
    "ends_at",
)


@dataclass(frozen=True)
class AlertRow:
    alert_id: str
    fingerprint: str
    kind: str
    severity: str
    status: str
    team: str
    workflow: str | None
    task_id: str | None
    summary: str
    evidence: dict[str, Any]
    labels: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None


@dataclass(frozen=True)
class NotificationRow:
    ts: datetime
    receiver: str
    attempt: int
    result: str
    error: str
    latency_ms: int
    alert_id: str


def list_alerts_sql(
    *, team: str | None, status: str | None, kind: str | None, limit: int
) -> tuple[str, dict[str, Any]]:
    """The latest state of each alert (by fingerprint), newest first.

    A resolved row wins over a firing row with the same start."""
    where: list[str] = []
    params: dict[str, Any] = {"limit": limit}
    if team:
        where.append("team = {team:String}")
        params["team"] = team
    if kind:
        where.append("kind = {kind:String}")
        params["kind"] = kind
    inner_where = f" WHERE {' AND '.join(where)}" if where else ""
    latest = ", ".join(f"argMax({c}, v) AS {c}" for c in _ALERT_COLUMNS if c != "fingerprint")
    # v orders the versions of one alert: later start, then resolved over firing.
    versions = (
        "SELECT *, (starts_at, status = 'resolved', coalesce(ends_at, starts_at)) AS v "  # noqa: S608
        f"FROM alerts{inner_where}"
    )
    # Identifiers are constants of this module; every user value is a bound parameter.
    sql = f"SELECT fingerprint, {latest} FROM ({versions}) GROUP BY fingerprint"  # noqa: S608
    outer = ""
    if status:
        outer = "WHERE status = {status:String} "
        params["status"] = status
    columns = ", ".join(_ALERT_COLUMNS)
    return (
        f"SELECT {columns} FROM ({sql}) {outer}"  # noqa: S608
        "ORDER BY starts_at DESC LIMIT {limit:UInt32}",
        params,
    )


def show_alert_sql(alert_id: str) -> tuple[str, dict[str, Any]]:
    """Every row of one alert: by id, or by fingerprint (an alert's versions share it)."""
    columns = ", ".join(_ALERT_COLUMNS)
    return (
        f"SELECT {columns} FROM alerts "  # noqa: S608
        "WHERE alert_id = {id:String} OR fingerprint = {id:String} "
        "ORDER BY starts_at, status = 'resolved'",
        {"id": alert_id},
    )


def notifications_sql(alert_ids: list[str]) -> tuple[str, dict[str, Any]]:
    return (
        "SELECT ts, receiver, attempt, result, error, latency_ms, alert_id FROM notifications "
        "WHERE alert_id IN {ids:Array(String)} ORDER BY ts, receiver, attempt",
        {"ids": alert_ids},
    )


def _json_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, bytes | str) and value:
        try:
            doc = orjson.loads(value)
        except orjson.JSONDecodeError:
            return {"raw": str(value)}
        return doc if isinstance(doc, dict) else {"value": doc}
    return {}


def _alert_row(row: tuple[Any, ...]) -> AlertRow:
    doc = dict(zip(_ALERT_COLUMNS, row, strict=True))
    return AlertRow(
        alert_id=str(doc["alert_id"]),
        fingerprint=str(doc["fingerprint"]),
        kind=str(doc["kind"]),
        severity=str(doc["severity"]),
        status=str(doc["status"]),
        team=str(doc["team"]),
        workflow=doc["workflow"] or None,
        task_id=doc["task_id"] or None,
        summary=str(doc["summary"]),
        evidence=_json_dict(doc["evidence"]),
        labels={str(k): str(v) for k, v in _json_dict(doc["labels"]).items()},
        starts_at=doc["starts_at"],
        ends_at=doc["ends_at"],
    )


class AlertHistory:
    """Reads alerts and notifications through ``reader`` (``query(sql, parameters)``)."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader

    @classmethod
    def open(cls, dsn: str, data_dir: Path) -> AlertHistory:
        """On the store at ``dsn``: through the endpoint of the worker that owns it, if any."""
        return cls(open_reader(dsn, data_dir))

    def _query(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        return self.reader.query(sql, params).rows

    def latest(
        self,
        *,
        team: str | None = None,
        status: str | None = None,
        kind: str | None = None,
        limit: int = 50,
    ) -> list[AlertRow]:
        sql, params = list_alerts_sql(team=team, status=status, kind=kind, limit=limit)
        return [_alert_row(r) for r in self._query(sql, params)]

    def show(self, alert_id: str) -> tuple[list[AlertRow], list[NotificationRow]]:
        sql, params = show_alert_sql(alert_id)
        alerts = [_alert_row(r) for r in self._query(sql, params)]
        if not alerts:
            return [], []
        ids = sorted({a.alert_id for a in alerts})
        sql, params = notifications_sql(ids)
        notes = [
            NotificationRow(
                ts=r[0],
                receiver=str(r[1]),
                attempt=int(r[2]),
                result=str(r[3]),
                error=str(r[4] or ""),
                latency_ms=int(r[5]),
                alert_id=str(r[6]),
            )
            for r in self._query(sql, params)
        ]
        return alerts, notes

    def close(self) -> None:
        self.reader.close()
