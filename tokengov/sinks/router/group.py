"""An aggregation group: the alerts one route sends to one receiver together
(Alertmanager's ``aggrGroup``), as plain data that survives a restart."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson

from tokengov.core.contracts import Alert

__all__ = ["AggrGroup", "group_key", "is_resolved"]


def group_key(route: str, receiver: str, labels: dict[str, str]) -> str:
    """``routes.routes[0]>search-pager:{kind="runaway", team="search"}``."""
    inner = ", ".join(f'{k}="{labels[k]}"' for k in sorted(labels))
    return f"{route}>{receiver}:{{{inner}}}"


def is_resolved(alert: Alert, now: datetime) -> bool:
    """Resolved by a ``resolved`` message, or because its ``ends_at`` has passed."""
    return alert.status == "resolved" or (alert.ends_at is not None and alert.ends_at <= now)


@dataclass
class AggrGroup:
    key: str
    route: str
    receiver: str
    labels: dict[str, str]
    group_wait: timedelta
    group_interval: timedelta
    repeat_interval: timedelta
    next_flush: datetime
    has_flushed: bool = False
    alerts: dict[str, Alert] = field(default_factory=dict)  # by fingerprint

    def to_json(self) -> bytes:
        doc: dict[str, Any] = {
            "key": self.key,
            "route": self.route,
            "receiver": self.receiver,
            "labels": self.labels,
            "group_wait_s": self.group_wait.total_seconds(),
            "group_interval_s": self.group_interval.total_seconds(),
            "repeat_interval_s": self.repeat_interval.total_seconds(),
            "next_flush": self.next_flush.isoformat(),
            "has_flushed": self.has_flushed,
            "alerts": [a.model_dump(mode="json") for a in self.alerts.values()],
        }
        return orjson.dumps(doc)

    @classmethod
    def from_json(cls, raw: bytes | str) -> AggrGroup:
        doc = orjson.loads(raw)
        alerts = [Alert.model_validate(a) for a in doc["alerts"]]
        return cls(
            key=doc["key"],
            route=doc["route"],
            receiver=doc["receiver"],
            labels=dict(doc["labels"]),
            group_wait=timedelta(seconds=doc["group_wait_s"]),
            group_interval=timedelta(seconds=doc["group_interval_s"]),
            repeat_interval=timedelta(seconds=doc["repeat_interval_s"]),
            next_flush=datetime.fromisoformat(doc["next_flush"]),
            has_flushed=bool(doc["has_flushed"]),
            alerts={a.fingerprint: a for a in alerts},
        )
