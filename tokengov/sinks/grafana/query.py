"""A panel's query: its SQL (with Grafana variables and ClickHouse-plugin macros) and format."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

__all__ = ["PanelQuery", "QueryFormat"]


class QueryFormat(IntEnum):
    """The plugin's ``format``: how the back end shapes the result into data frames.

    ``TIME_SERIES`` needs a ``time`` column and turns long results (time, label…, value)
    into one series per label set; ``TABLE`` passes rows through.
    """

    TIME_SERIES = 0
    TABLE = 1


@dataclass(frozen=True)
class PanelQuery:
    sql: str
    format: QueryFormat = QueryFormat.TABLE
    # The legend of a series (Grafana's displayName, may use ${__field.labels.x}).
    legend: str | None = None
