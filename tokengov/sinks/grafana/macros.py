"""Expand a panel's SQL the way Grafana and the ClickHouse plugin do, for a given time range.

Grafana runs a ClickHouse panel query in two steps, and so does :func:`render_query`:

1. the front end replaces template variables — ``$team``, ``${team}``, ``${team:singlequote}``,
   ``[[team]]`` — with the selected values, formatted (Grafana's ``templateSrv.replace``);
2. the plugin's back end replaces its macros — ``$__timeFilter(col)``, ``$__fromTime``,
   ``$__timeInterval(col)``… — with ClickHouse SQL for the query's time range and interval
   (``grafana/clickhouse-datasource`` ``pkg/macros/macros.go``).

Tests use it to run every committed panel query against the real engine (chdb). A macro
this module does not know raises :class:`MacroError` instead of passing through silently.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tokengov.core.errors import TokenGovError

__all__ = [
    "ALL_VALUE",
    "MacroError",
    "TimeRange",
    "VariableValue",
    "expand_macros",
    "expand_variables",
    "render_query",
]

# What Grafana substitutes for a variable's "All" option when no custom all value is set.
ALL_VALUE = "$__all"


class MacroError(TokenGovError):
    """A panel query uses a macro or format the expander (and so the tests) cannot check."""


@dataclass(frozen=True)
class TimeRange:
    """A dashboard time range; both ends timezone-aware."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("TimeRange needs timezone-aware datetimes")
        if self.end < self.start:
            raise ValueError(f"TimeRange ends ({self.end}) before it starts ({self.start})")

    @classmethod
    def last(cls, span: timedelta, *, now: datetime) -> TimeRange:
        return cls(now - span, now)


@dataclass(frozen=True)
class VariableValue:
    """The current state of one template variable, as Grafana holds it.

    ``values`` are the selected values. ``include_all`` with ``values == (ALL_VALUE,)`` means
    "All" is selected: Grafana then substitutes ``all_value`` *raw* (custom all values are
    never formatted) or, without one, every option in ``options``.
    """

    values: tuple[str, ...]
    options: tuple[str, ...] = ()
    all_value: str | None = None
    multi: bool = True

    @classmethod
    def all(cls, *, all_value: str | None, options: tuple[str, ...] = ()) -> VariableValue:
        return cls(values=(ALL_VALUE,), options=options, all_value=all_value)

    @property
    def is_all(self) -> bool:
        return self.values == (ALL_VALUE,)


# --- step 1: template variables (Grafana front end) -------------------------------------------

# Grafana's variableRegex: $var | [[var(:fmt)]] | ${var(.path)(:fmt)}
_VARIABLE = re.compile(
    r"\$(?P<plain>\w+)"
    r"|\[\[(?P<bracket>\w+?)(?::(?P<bracket_fmt>\w+))?\]\]"
    r"|\$\{(?P<braced>\w+)(?:\.(?P<path>[^:^}]+))?(?::(?P<braced_fmt>[^}]+))?\}"
)


def _quote(value: str, quote: str) -> str:
    return quote + value.replace(quote, "\\" + quote) + quote


def _regex_escape(value: str) -> str:
    return re.sub(r"[\\^$*+?.()|\[\]{}/]", lambda m: "\\" + m.group(0), value)


def _fmt_default(values: list[str], multi: bool) -> str:
    if multi or len(values) != 1:
        return "{" + ",".join(values) + "}"
    return values[0]


_FORMATS: dict[str, Callable[[list[str]], str]] = {
    "singlequote": lambda vs: ",".join(_quote(v, "'") for v in vs),
    "doublequote": lambda vs: ",".join(_quote(v, '"') for v in vs),
    "sqlstring": lambda vs: ",".join("'" + v.replace("'", "''") + "'" for v in vs),
    "csv": ",".join,
    "raw": ",".join,
    "text": ",".join,
    "pipe": "|".join,
    "distributed": ",".join,
    "json": lambda vs: json.dumps(vs[0] if len(vs) == 1 else vs),
    "regex": lambda vs: (
        _regex_escape(vs[0]) if len(vs) == 1 else "(" + "|".join(map(_regex_escape, vs)) + ")"
    ),
}


def _format_variable(name: str, var: VariableValue, fmt: str | None) -> str:
    if var.is_all:
        if var.all_value is not None:
            # Grafana substitutes a custom all value as-is, whatever the format.
            return var.all_value
        values = list(var.options)
    else:
        values = list(var.values)
    if fmt is None:
        return _fmt_default(values, var.multi)
    formatter = _FORMATS.get(fmt)
    if formatter is None:
        raise MacroError(f"variable {name!r}: unknown format {fmt!r}")
    return formatter(values)


def expand_variables(sql: str, variables: Mapping[str, VariableValue]) -> str:
    """Replace the template variables Grafana knows; leave every other ``$name`` untouched."""

    def replace(m: re.Match[str]) -> str:
        name = m.group("plain") or m.group("bracket") or m.group("braced")
        if name not in variables:
            return m.group(0)
        if m.group("path"):
            raise MacroError(f"variable {name!r}: field paths (${{{name}.…}}) are not supported")
        fmt = m.group("bracket_fmt") or m.group("braced_fmt")
        return _format_variable(name, variables[name], fmt)

    return _VARIABLE.sub(replace, sql)


# --- step 2: the ClickHouse plugin's macros (back end) ----------------------------------------


def _to_datetime(t: datetime) -> str:
    return f"toDateTime({math.floor(t.timestamp())})"


def _to_datetime64(t: datetime) -> str:
    return f"fromUnixTimestamp64Milli({math.floor(t.timestamp() * 1000)})"


def _to_date(t: datetime) -> str:
    return f"toDate('{t.astimezone(UTC):%Y-%m-%d}')"


@dataclass(frozen=True)
class _Query:
    time_range: TimeRange
    interval: timedelta


def _args(name: str, args: list[str], n: int) -> list[str]:
    if len(args) != n:
        raise MacroError(f"$__{name}: expected {n} argument(s), received {len(args)}")
    return args


def _time_filter(q: _Query, args: list[str]) -> str:
    (col,) = _args("timeFilter", args, 1)
    r = q.time_range
    return f"{col} >= {_to_datetime(r.start)} AND {col} <= {_to_datetime(r.end)}"


def _time_filter_ms(q: _Query, args: list[str]) -> str:
    (col,) = _args("timeFilter_ms", args, 1)
    r = q.time_range
    return f"{col} >= {_to_datetime64(r.start)} AND {col} <= {_to_datetime64(r.end)}"


def _date_filter(q: _Query, args: list[str]) -> str:
    (col,) = _args("dateFilter", args, 1)
    r = q.time_range
    return f"{col} >= {_to_date(r.start)} AND {col} <= {_to_date(r.end)}"


def _date_time_filter(q: _Query, args: list[str]) -> str:
    date_col, time_col = _args("dateTimeFilter", args, 2)
    r = q.time_range
    return (
        f"({date_col} >= {_to_date(r.start)} AND {date_col} <= {_to_date(r.end)}) AND "
        f"({time_col} >= {_to_datetime(r.start)} AND {time_col} <= {_to_datetime(r.end)})"
    )


def _interval_seconds(q: _Query) -> int:
    return int(max(q.interval.total_seconds(), 1))


def _time_interval(q: _Query, args: list[str]) -> str:
    (col,) = _args("timeInterval", args, 1)
    return f"toStartOfInterval(toDateTime({col}), INTERVAL {_interval_seconds(q)} second)"


def _time_interval_ms(q: _Query, args: list[str]) -> str:
    (col,) = _args("timeInterval_ms", args, 1)
    ms = int(max(q.interval.total_seconds() * 1000, 1))
    return f"toStartOfInterval(toDateTime64({col}, 3), INTERVAL {ms} millisecond)"


_MACROS: dict[str, Callable[[_Query, list[str]], str]] = {
    "fromTime": lambda q, _a: _to_datetime(q.time_range.start),
    "toTime": lambda q, _a: _to_datetime(q.time_range.end),
    "fromTime_ms": lambda q, _a: _to_datetime64(q.time_range.start),
    "toTime_ms": lambda q, _a: _to_datetime64(q.time_range.end),
    "timeFilter": _time_filter,
    "timeFilter_ms": _time_filter_ms,
    "dateFilter": _date_filter,
    "dateTimeFilter": _date_time_filter,
    "dt": _date_time_filter,
    "timeInterval": _time_interval,
    "timeInterval_ms": _time_interval_ms,
    "interval_s": lambda q, _a: str(_interval_seconds(q)),
}

_MACRO_NAME = re.compile(r"\$__(\w+)")


def _split_args(text: str) -> list[str]:
    """Split macro arguments on top-level commas (nested calls keep their commas)."""
    args: list[str] = []
    depth = 0
    current: list[str] = []
    for ch in text:
        if ch == "," and depth == 0:
            args.append("".join(current).strip())
            current = []
            continue
        depth += ch == "("
        depth -= ch == ")"
        current.append(ch)
    tail = "".join(current).strip()
    if tail or args:
        args.append(tail)
    return args


def _closing_paren(sql: str, open_at: int) -> int:
    depth = 0
    for i in range(open_at, len(sql)):
        if sql[i] == "(":
            depth += 1
        elif sql[i] == ")":
            depth -= 1
            if depth == 0:
                return i
    raise MacroError(
        f"unbalanced parentheses after macro at offset {open_at}: {sql[open_at:][:40]!r}"
    )


def expand_macros(sql: str, time_range: TimeRange, interval: timedelta) -> str:
    """Replace every ``$__macro`` / ``$__macro(args)``; an unknown macro raises MacroError."""
    query = _Query(time_range, interval)
    out: list[str] = []
    pos = 0
    while (m := _MACRO_NAME.search(sql, pos)) is not None:
        name = m.group(1)
        fn = _MACROS.get(name)
        if fn is None:
            raise MacroError(
                f"$__{name}: not a ClickHouse-plugin macro this expander knows "
                f"(known: {', '.join(sorted(_MACROS))})"
            )
        out.append(sql[pos : m.start()])
        end = m.end()
        args: list[str] = []
        if end < len(sql) and sql[end] == "(":
            close = _closing_paren(sql, end)
            args = _split_args(sql[end + 1 : close])
            end = close + 1
        out.append(fn(query, args))
        pos = end
    out.append(sql[pos:])
    return "".join(out)


def render_query(
    sql: str,
    *,
    time_range: TimeRange,
    interval: timedelta,
    variables: Mapping[str, VariableValue],
) -> str:
    """Variables first (front end), then macros (back end) — the order Grafana uses."""
    return expand_macros(expand_variables(sql, variables), time_range, interval)
