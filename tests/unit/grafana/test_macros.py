"""The Grafana / ClickHouse-plugin macro expander, statement by statement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tokengov.sinks.grafana.macros import (
    MacroError,
    TimeRange,
    VariableValue,
    expand_macros,
    expand_variables,
    render_query,
)
from tokengov.sinks.grafana.sql import ALL_VALUE, scope

START = datetime(2026, 11, 28, 23, 30, 15, 250_000, tzinfo=UTC)
END = datetime(2026, 11, 29, 5, 0, 0, 999_000, tzinfo=UTC)
RANGE = TimeRange(START, END)
S, E = int(START.timestamp()), int(END.timestamp())
MINUTE = timedelta(minutes=1)


def expand(sql: str, interval: timedelta = MINUTE) -> str:
    return expand_macros(sql, RANGE, interval)


def test_time_macros_match_the_plugin() -> None:
    assert expand("$__fromTime") == f"toDateTime({S})"
    assert expand("$__toTime") == f"toDateTime({E})"
    assert expand("$__fromTime_ms, $__toTime_ms") == (
        f"fromUnixTimestamp64Milli({S * 1000 + 250}), fromUnixTimestamp64Milli({E * 1000 + 999})"
    )
    assert expand("WHERE $__timeFilter(ts)") == (
        f"WHERE ts >= toDateTime({S}) AND ts <= toDateTime({E})"
    )
    assert expand("$__timeFilter_ms(ts)") == (
        f"ts >= fromUnixTimestamp64Milli({S * 1000 + 250}) AND "
        f"ts <= fromUnixTimestamp64Milli({E * 1000 + 999})"
    )
    assert (
        expand("$__dateFilter(day)")
        == "day >= toDate('2026-11-28') AND day <= toDate('2026-11-29')"
    )
    assert (
        expand("$__dateTimeFilter(day, ts)")
        == expand("$__dt(day,ts)")
        == (
            "(day >= toDate('2026-11-28') AND day <= toDate('2026-11-29')) AND "
            f"(ts >= toDateTime({S}) AND ts <= toDateTime({E}))"
        )
    )


def test_interval_macros() -> None:
    assert expand("$__timeInterval(hour)", timedelta(hours=1)) == (
        "toStartOfInterval(toDateTime(hour), INTERVAL 3600 second)"
    )
    assert expand("$__timeInterval_ms(ts)", timedelta(milliseconds=1500)) == (
        "toStartOfInterval(toDateTime64(ts, 3), INTERVAL 1500 millisecond)"
    )
    # Never below one second / one millisecond, as in the plugin.
    assert expand("$__interval_s", timedelta(milliseconds=10)) == "1"
    assert expand("$__interval_s", timedelta(minutes=5)) == "300"


def test_macro_arguments_may_nest_calls() -> None:
    assert expand("$__timeFilter(toDateTime(ts, 'UTC'))") == (
        f"toDateTime(ts, 'UTC') >= toDateTime({S}) AND toDateTime(ts, 'UTC') <= toDateTime({E})"
    )
    assert expand("$__timeInterval(coalesce(a, b))", MINUTE).startswith(
        "toStartOfInterval(toDateTime(coalesce(a, b)), INTERVAL 60 second)"
    )


def test_unknown_or_misused_macros_raise() -> None:
    with pytest.raises(MacroError, match=r"\$__timeGroup: not a ClickHouse-plugin macro"):
        expand("SELECT $__timeGroup(ts, '1m')")
    with pytest.raises(MacroError, match="expected 1 argument"):
        expand("$__timeFilter(a, b)")
    with pytest.raises(MacroError, match="expected 1 argument"):
        expand("$__timeFilter")
    with pytest.raises(MacroError, match="unbalanced"):
        expand("$__timeFilter(ts")
    with pytest.raises(MacroError, match=r"\$__interval: not"):
        expand("$__interval")  # a front-end global variable, not a plugin macro


def test_variable_formats() -> None:
    team = VariableValue(values=("search", "it's"))
    v = {"team": team}
    assert expand_variables("${team:singlequote}", v) == "'search','it\\'s'"
    assert expand_variables("${team:doublequote}", v) == '"search","it\'s"'
    assert expand_variables("${team:sqlstring}", v) == "'search','it''s'"
    assert expand_variables("${team:csv} ${team:pipe}", v) == "search,it's search|it's"
    assert expand_variables("${team:regex}", {"team": VariableValue(values=("a.b", "c"))}) == (
        "(a\\.b|c)"
    )
    assert (
        expand_variables("$team [[team]] ${team}", v) == "{search,it's} {search,it's} {search,it's}"
    )
    one = {"team": VariableValue(values=("search",), multi=False)}
    assert expand_variables("$team-x ${team:singlequote}", one) == "search-x 'search'"


def test_all_uses_the_custom_all_value_raw_or_every_option() -> None:
    custom = {"team": VariableValue.all(all_value=ALL_VALUE)}
    assert expand_variables("(${team:singlequote})", custom) == "('__all')"
    options = {"team": VariableValue.all(all_value=None, options=("a", "b"))}
    assert expand_variables("(${team:singlequote})", options) == "('a','b')"


def test_unknown_variables_and_macros_are_left_for_the_next_step() -> None:
    sql = "SELECT $__fromTime, $other, ${team:singlequote}"
    assert expand_variables(sql, {"team": VariableValue(values=("x",))}) == (
        "SELECT $__fromTime, $other, 'x'"
    )
    with pytest.raises(MacroError, match="unknown format"):
        expand_variables("${team:nonsense}", {"team": VariableValue(values=("x",))})


def test_render_query_runs_variables_then_macros() -> None:
    sql = f"SELECT 1 FROM t WHERE $__timeFilter(ts) AND {scope(model=None)}"
    variables = {
        "team": VariableValue(values=("search",)),
        "workflow": VariableValue.all(all_value=ALL_VALUE),
    }
    assert render_query(sql, time_range=RANGE, interval=MINUTE, variables=variables) == (
        f"SELECT 1 FROM t WHERE ts >= toDateTime({S}) AND ts <= toDateTime({E}) AND "
        "('__all' IN ('search') OR team IN ('search')) AND "
        "('__all' IN ('__all') OR workflow IN ('__all'))"
    )


def test_time_range_must_be_aware_and_ordered() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        TimeRange(datetime(2026, 1, 1), END)
    with pytest.raises(ValueError, match="before"):
        TimeRange(END, START)
