"""The questions analysts ask first, as SQL over the history (built here, run by a Reader).

=================  ============================================================  ==========
report             answers                                                       reads
=================  ============================================================  ==========
spend              spend by team / workflow / model over a period               spend_hourly
top-tasks          the most expensive tasks, with their outcome                  task_spend_hourly
unit-economics     per workflow: success rate, tokens per outcome, cost per      task_spend_hourly,
                   successful task, retry token ratio                            task_outcomes
budgets            each budget of the policy: spent so far, % used, forecast     spend_daily
alerts             alerts by team, kind and severity; firing or resolved         alerts
coverage           attribution coverage (team, workflow, cost) and unpriced      spend_daily
                   calls, per day and in total
=================  ============================================================  ==========

Every report takes a :class:`ReportWindow` (``since`` ≤ t < ``until``, optional
team) and returns a :class:`QueryResult`.

``top-tasks`` and ``unit-economics`` read the per-task aggregate ``task_spend_hourly``
(schema version 6) for the whole hours of the window and ``token_events`` only for the
parts of an hour at its two ends (:func:`task_calls_sql`): the same totals as a scan of
the raw table, to the last digit, from ~1 row per task instead of one per call.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from tokengov.core.contracts import UNATTRIBUTED
from tokengov.core.policy import Budget, Policy
from tokengov.sinks.clickhouse.reader import Reader
from tokengov.sinks.clickhouse.schema import (
    OUTCOME_QUALITY_FLAG,
    OUTCOME_STATUS_UNIT,
    OUTCOME_STATUSES,
    OUTCOME_TS_UNIT,
    TASK_TOTALS_MERGE,
    TASK_TOTALS_NEUTRAL,
)
from tokengov.sinks.clickhouse.store import QueryResult

__all__ = [
    "MAX_LISTED_PARTIAL_TASKS",
    "ONE_SNAPSHOT",
    "REPORTS",
    "TASK_TOTALS_PARTS_SQL",
    "Report",
    "ReportWindow",
    "alerts_sql",
    "budget_spend_sql",
    "coverage_sql",
    "outcome_from",
    "part_level",
    "partial_tasks_sql",
    "run_report",
    "spend_sql",
    "task_calls_sql",
    "task_outcomes_sql",
    "task_statement",
    "task_totals_parts",
    "task_totals_read",
    "top_tasks_sql",
    "unit_economics_sql",
    "whole_hours",
]

_TEAM: Final = "({team:String} = '' OR team = {team:String})"
_TS_WINDOW: Final = "ts >= {since:DateTime64(3, 'UTC')} AND ts < {until:DateTime64(3, 'UTC')}"
_TOKENS: Final = ("input", "output", "cached_input", "cache_write", "reasoning")


@dataclass(frozen=True)
class ReportWindow:
    since: datetime
    until: datetime
    team: str | None = None
    limit: int = 20
    policy: Policy | None = None

    def __post_init__(self) -> None:
        if self.since.tzinfo is None or self.until.tzinfo is None:
            raise ValueError("since and until must be timezone-aware")
        if self.since >= self.until:
            raise ValueError(f"since ({self.since}) must be before until ({self.until})")
        if self.limit < 1:
            raise ValueError("limit must be ≥ 1")

    def parameters(self) -> dict[str, Any]:
        fmt = "%Y-%m-%d %H:%M:%S.%f"
        return {
            "since": self.since.astimezone(UTC).strftime(fmt)[:-3],
            "until": self.until.astimezone(UTC).strftime(fmt)[:-3],
            "team": self.team or "",
            "limit": self.limit,
        }


def spend_sql() -> str:
    sums = ", ".join(f"sum({k}_tokens) AS {k}_tokens" for k in _TOKENS)
    return f"""SELECT team, workflow, model, sum(calls) AS calls, {sums},
    sum(cost_usd) AS cost_usd, sum(retries) AS retries, sum(errors) AS errors
FROM spend_hourly
WHERE hour >= toStartOfHour({{since:DateTime64(3, 'UTC')}})
  AND hour < {{until:DateTime64(3, 'UTC')}} AND {_TEAM}
GROUP BY team, workflow, model
ORDER BY cost_usd DESC, team, workflow, model"""


# Sums over the raw table, in types no sum of contract values overflows (UInt64 + UInt64
# wraps at 2**64, a sum of Decimal(38, 12) at ~1.7·10**26, silently); the rollups are
# already Int256 / Decimal(76, 12).
_RAW_TOKENS: Final = "toInt256(input_tokens) + toInt256(output_tokens)"
_TS: Final = "DateTime64(3, 'UTC')"


def whole_hours(window: ReportWindow) -> dict[str, str]:
    """The parameters of :func:`task_calls_sql` that split the window: the whole hours
    [``hours_from``, ``hours_to``) (none when ``hours_from`` ≥ ``hours_to``) and the rest, the
    raw table's two pieces [``head_from``, ``head_to``) and [``tail_from``, ``tail_to``)."""
    since = window.since.astimezone(UTC)
    until = window.until.astimezone(UTC)
    first = since.replace(minute=0, second=0, microsecond=0)
    if first < since:
        first += timedelta(hours=1)
    last = until.replace(minute=0, second=0, microsecond=0)
    head_to = min(until, first)
    tail_from = max(since, last, head_to)
    bounds = {
        "hours_from": first,
        "hours_to": last,
        "head_from": since,
        "head_to": head_to,
        "tail_from": tail_from,
        "tail_to": until,
    }
    fmt = "%Y-%m-%d %H:%M:%S.%f"
    return {name: value.strftime(fmt)[:-3] for name, value in bounds.items()}


def task_calls_sql(only: str = "") -> str:
    """The calls of each (team, workflow, task) in the window: ``n_calls``, ``n_tokens``
    (input + output), ``n_retry_tokens`` (of calls with attempt > 1), ``n_cost_usd``,
    ``n_retries``, ``n_tool_calls``, ``n_first``/``n_last`` (first and last call) — several
    rows per task; sum them. The whole hours come from ``task_spend_hourly``, the rest of the
    window (at most an hour at each end) from ``token_events``. ``only``: a condition on
    ``task_id`` both reads add (the tasks to read)."""
    restrict = f" AND {only}" if only else ""
    raw = ", ".join(
        [
            "toInt256(count())",
            f"sum({_RAW_TOKENS})",
            f"sumIf({_RAW_TOKENS}, attempt > 1)",
            "sum(toDecimal256(cost_usd, 12))",
            "toInt256(countIf(attempt > 1))",
            "sum(toInt256(tool_calls))",
            "min(ts)",
            "max(ts)",
        ]
    )
    return f"""SELECT team, workflow, task_id, calls AS n_calls, tokens AS n_tokens,
        retry_tokens AS n_retry_tokens, cost_usd AS n_cost_usd, retries AS n_retries,
        tool_calls AS n_tool_calls, CAST(first_call AS DateTime64(3, 'UTC')) AS n_first,
        CAST(last_call AS DateTime64(3, 'UTC')) AS n_last
    FROM task_spend_hourly
    WHERE hour >= {{hours_from:{_TS}}} AND hour < {{hours_to:{_TS}}} AND {_TEAM}{restrict}
    UNION ALL
    SELECT team, workflow, task_id, {raw}
    FROM token_events
    WHERE ((ts >= {{head_from:{_TS}}} AND ts < {{head_to:{_TS}}})
        OR (ts >= {{tail_from:{_TS}}} AND ts < {{tail_to:{_TS}}})) AND {_TEAM}{restrict}
    GROUP BY team, workflow, task_id"""


#: The parts of ``task_totals`` and their rows, read from the table itself (its ``_part`` and
#: ``_partition_id`` virtual columns), not from ``system.parts``: a reader needs no right beyond
#: ``SELECT`` on the database (a server with ``select_from_system_db_requires_grant`` would
#: refuse ``system.parts`` to the reader users of deploy/clickhouse/users.d). See
#: :func:`task_totals_parts`.
TASK_TOTALS_PARTS_SQL: Final = """SELECT _part, _partition_id, count()
FROM task_totals
GROUP BY _part, _partition_id"""


def part_level(name: str, partition_id: str) -> int | None:
    """The merge level of a MergeTree part from its name (``<partition>_<min block>_<max
    block>_<level>[_<mutation>]``); ``None`` for a name of another shape."""
    prefix = f"{partition_id}_"
    fields = name[len(prefix) :].split("_") if name.startswith(prefix) else []
    if len(fields) not in (3, 4) or not all(f.isdigit() for f in fields):
        return None
    return int(fields[2])


def task_totals_parts(reader: Reader) -> list[tuple[str, bool]]:
    """The parts of ``task_totals`` as (name, merged): the merged ones (level > 0: merged, or
    sorted and folded as they were inserted — ``optimize_on_insert``: no two rows of one task
    in one of them, the invariant ``FINAL`` relies on as well) first, the largest first.
    Looked up before each statement (:func:`task_statement`): the first, if merged, is bound
    as ``{merged_part:String}`` (see :func:`task_totals_read`). The rows are the same for a
    merged part's name or a name that matches no part (if that part was merged away
    meanwhile, every row is folded); only the time depends on it. (A part of level 0 may hold
    two rows of one task: its name is never bound.)"""
    parts = []
    for name, partition_id, rows in reader.query(TASK_TOTALS_PARTS_SQL).rows:
        level = part_level(str(name), str(partition_id))
        parts.append((level is not None and level > 0, int(rows), str(name)))
    parts.sort(key=lambda p: (not p[0], -p[1], p[2]))
    return [(name, merged) for merged, _, name in parts]


_MERGED: Final = "{merged_part:String}"
#: The rows of ``task_totals`` outside that part: the parts written since it was merged.
_FRESH_ROWS: Final = f"FROM task_totals WHERE _part != {_MERGED}"
_MERGE: Final = {c: (f, t) for c, f, t in TASK_TOTALS_MERGE}


def _used(where: str, columns: tuple[str, ...]) -> list[str]:
    """The columns of ``task_totals`` a read of ``columns`` where ``where`` needs (only
    those: ClickHouse would read the others' parts too)."""
    return [c for c in _MERGE if c in columns or re.search(rf"\b{c}\b", where)]


def _changed_tasks(where: str, used: list[str], needs_calls: bool) -> str:
    """The tasks whose rows outside the merged part may change their row of ``task_totals``
    as a read of ``used`` where ``where`` sees it — a subquery of their ids: those with a row
    there that holds something other than the neutral values
    (:data:`~tokengov.sinks.clickhouse.schema.TASK_TOTALS_NEUTRAL`) in a column of ``used``,
    or that ``where`` keeps. For any other task, ``FINAL``'s row has, in ``used``, the values
    of the task's row in the merged part, or (none there) the neutral ones, which ``where``
    does not keep (its rows outside are all the neutral row, which it does not keep). Row by
    row, without folding: a task whose rows cancel out is folded needlessly, never missed. (An
    outcome reported since the merge changes only ``outcome``.) ``needs_calls``: as in
    :func:`task_totals_read`."""
    neutral = " AND ".join(f"{c} = {TASK_TOTALS_NEUTRAL[c]}" for c in used) or "1"
    # (A condition that needs calls keeps no neutral row: then that suffices, and is shorter
    # for ClickHouse to analyse, twice per statement.)
    keeps = "" if needs_calls and "calls" in used else f" OR ({where})"
    return f"(SELECT task_id {_FRESH_ROWS} AND (NOT ({neutral}){keeps}))"


def task_totals_read(
    where: str, columns: tuple[str, ...], *, at_rest: bool = False, needs_calls: bool = False
) -> str:
    """The rows of ``task_totals`` as ``FINAL`` reads it (one per task, its rows folded as a
    merge folds them) that satisfy ``where`` (a condition on its columns), without merging
    every row read with the fresh parts (which span the whole range of task ids, so that
    ``FINAL`` merges all of them): the rows of the largest merged part
    (``{merged_part:String}``, see :data:`TASK_TOTALS_PARTS_SQL`) as they are (``where``
    first, in ``PREWHERE``), but for the tasks whose rows in the parts written since it was
    merged change what this read sees (:func:`_changed_tasks`: few); every row of those tasks,
    in every part (found by the table's key), folded (``GROUP BY task_id``). (Any other task
    with rows written since has, in the columns read, its merged row's values, or none: its
    rows there, alone, fold to a row ``where`` does not keep. One read of the table for the
    fold, not the parts written since and the merged part's rows of those tasks apart:
    ClickHouse took ~8 ms less to plan it.)

    An ``outcome`` reported since the merge — the usual change of an old task's row — does not
    make its task one of those when ``where`` does not read ``outcome``: the merged part's row
    then takes the task's latest outcome, the greatest of its own and of the task's rows written
    since (joined by ``task_id``: few). A subquery; the statement reading it ends with
    :data:`ONE_SNAPSHOT`, so that all its reads of the table see the same parts.

    ``at_rest``: the parts lookup found the merged part alone (a part written since is
    unlikely): every task with a row outside it is folded, without the test of what its
    rows change, which costs ClickHouse more to analyse than nothing to fold saves.

    ``needs_calls``: ``where`` keeps no row without calls (it is ``calls > 0 AND …``, a
    conjunction, as every condition of the reports is), so that a row neutral in ``calls``
    is one it does not keep: the test of what a task's rows change is then shorter."""
    joined = not at_rest and "outcome" in columns and not re.search(r"\boutcome\b", where)
    plain = "".join(f", CAST({c} AS {_MERGE[c][1]}) AS {c}" for c in columns)
    used = _used(where, columns)
    folded = ", ".join(f"{_MERGE[c][0]}({c}) AS {c}" for c in used)
    changed = (
        f"(SELECT task_id {_FRESH_ROWS})"
        if at_rest
        else _changed_tasks(
            where, [c for c in used if not (joined and c == "outcome")], needs_calls
        )
    )
    merged = f"""SELECT task_id{plain}
    FROM task_totals
    PREWHERE _part = {_MERGED} AND ({where})
    WHERE task_id NOT IN {changed}"""
    if joined:
        latest = "greatest(outcome, ifNull(latest, toUInt128(0))) AS outcome"
        # (in the caller's order: UNION ALL matches the fold's columns by position)
        kept = "".join(f", {latest if c == 'outcome' else c}" for c in columns)
        merged = f"""SELECT task_id{kept}
    FROM (
    {merged}
    ) AS m
    LEFT ANY JOIN (
        SELECT task_id, CAST(max(outcome) AS UInt128) AS latest {_FRESH_ROWS} GROUP BY task_id
    ) AS l USING task_id"""
    return f"""(
    {merged}
    UNION ALL
    SELECT task_id{plain} FROM (
        SELECT task_id, {folded}
        FROM task_totals
        PREWHERE task_id IN {changed}
        GROUP BY task_id
    ) WHERE {where}
)"""


#: The setting every statement that reads :func:`task_totals_read` ends with.
ONE_SNAPSHOT: Final = "SETTINGS enable_shared_storage_snapshot_in_query = 1"

_SINCE: Final = "{since:DateTime64(3, 'UTC')}"
_UNTIL: Final = "{until:DateTime64(3, 'UTC')}"
#: A task of ``task_totals`` (as :func:`task_totals_read` reads it) with calls in the window
#: — perhaps: those
#: between its first and last call may all fall outside it.
_TOUCHES: Final = (
    f"calls > 0 AND first_call < {_UNTIL} AND last_call >= {_SINCE} "
    "AND ({team:String} = '' OR (team_min <= {team:String} AND {team:String} <= team_max))"
)
#: A task all of whose calls the window holds (its lifetime totals are the window's).
_WHOLE: Final = (
    f"calls > 0 AND first_call >= {_SINCE} AND last_call < {_UNTIL} "
    "AND ({team:String} = '' OR (team_min = {team:String} AND team_max = {team:String}))"
)
#: ... and whose calls all name one workflow (unit-economics counts a task per workflow).
_WHOLE_ONE_WORKFLOW: Final = f"{_WHOLE} AND workflow_min = workflow_max"
#: top-tasks' order: the cost as Float64 first (cheap to sort, and monotonic, so ordering by
#: it and then by the exact cost is ordering by the exact cost), then the exact cost.
_RANK: Final = "toFloat64(cost_usd) DESC, cost_usd DESC, task_id"
#: The latest outcome's parts (``task_totals.outcome``, see
#: :data:`tokengov.sinks.clickhouse.schema.OUTCOME_TS_UNIT`), per row of unit-economics: an
#: outcome counts when its ``ts`` is not before ``since`` — ``outcome`` ≥
#: ``{outcome_from:UInt128}`` (:func:`outcome_from`: the packed value of ``since`` with the
#: least status, quality and flag, and at least 1, so that 0, no outcome, never counts);
#: a success is status 1 with its quality (-1 when it has none, as ``ifNull(quality, -1)``)
#: at or above its workflow's bar (NaN: the workflow has no bar — no policy bar is NaN).
# (Shifts and masks: a division of UInt128 per row cost ~7× the rest of the query. The bar
# by transform(), a hash lookup: indexOf() over the bars' names per row cost ~80 ms CPU of
# ~230 over a million tasks; the status as a code, not a string; the bound of the outcome
# computed here, not in each statement, which ClickHouse took ~7 ms to analyse.)
_HAS_OUTCOME: Final = "outcome >= {outcome_from:UInt128}"
_SUCCESS_STATUS: Final = (
    f"bitAnd(bitShiftRight(outcome, {OUTCOME_STATUS_UNIT.bit_length() - 1}), 3)"
    f" = {OUTCOME_STATUSES.index('success') + 1}"
)
_QUALITY_OR_LESS: Final = (
    f"if(bitAnd(bitShiftRight(outcome, {OUTCOME_QUALITY_FLAG.bit_length() - 1}), 1) = 1, "
    f"reinterpretAsFloat64(toUInt64(bitAnd(outcome, toUInt128('{OUTCOME_QUALITY_FLAG - 1}')))), "
    "-1)"
)
_BAR: Final = (
    "transform(t_workflow, {bar_workflows:Array(String)}, {bar_values:Array(Float64)}, nan)"
)


def outcome_from(since: datetime) -> int:
    """``{outcome_from:UInt128}``: the least packed outcome (:data:`OUTCOME_TS_UNIT`) whose
    ``ts`` is not before ``since`` (as bound, to the millisecond; before 1970, any), and ≥ 1:
    0 is no outcome."""
    ms = (
        since.astimezone(UTC).replace(microsecond=since.microsecond // 1000 * 1000)
        - datetime(1970, 1, 1, tzinfo=UTC)
    ) // timedelta(milliseconds=1)
    return max(ms, 0) * OUTCOME_TS_UNIT or 1


#: At most this many partial tasks (see :func:`partial_tasks_sql`) are looked up first and
#: bound to the report's statement as a list; more, and the statement selects them itself.
MAX_LISTED_PARTIAL_TASKS: Final = 10_000


def partial_tasks_condition(one_workflow: bool) -> str:
    """The condition on a row of ``task_totals`` (as ``FINAL`` reads it) of a partial task
    (:func:`partial_tasks_sql`)."""
    return f"{_TOUCHES} AND NOT ({_WHOLE_ONE_WORKFLOW if one_workflow else _WHOLE})"


def partial_tasks_sql(one_workflow: bool, *, at_rest: bool = False) -> str:
    """The tasks that may have calls in the window but are not wholly in it (the window's
    ends cross them, or they named several teams — or, for unit-economics
    (``one_workflow``), several workflows): read call by call, their hours from
    ``task_spend_hourly`` and the window's ragged ends from ``token_events``. Usually few
    (none when no task crosses an end of the window); ``{listed:UInt32}`` + 1 at most, as
    one row: an array (an empty result would cost an embedded store a second statement, to
    learn its columns). ``at_rest``: as in :func:`task_totals_read`."""
    read = task_totals_read(
        partial_tasks_condition(one_workflow), (), at_rest=at_rest, needs_calls=True
    )
    return f"""SELECT groupArray(task_id) FROM (
    SELECT task_id FROM {read}
    LIMIT {{listed:UInt32}} + 1
)
{ONE_SNAPSHOT}"""


def _partial(one_workflow: bool, listed: bool) -> str:
    """The condition on ``task_id`` that selects the partial tasks: the list bound as
    ``{partial:Array(String)}`` (``listed``), or the subquery itself."""
    if listed:
        return "task_id IN {partial:Array(String)}"
    read = task_totals_read(partial_tasks_condition(one_workflow), (), needs_calls=True)
    return f"task_id IN (SELECT task_id FROM {read})"


def top_tasks_sql(*, listed: bool = False, partial: bool = True, folded: bool = False) -> str:
    """The ``limit`` costliest tasks of the window (keys whose calls a repair took back to 0
    are no task), from two disjoint sets of tasks:

    * the tasks all of whose calls lie in the window (and name the team, if one is asked
      for): their lifetime totals in ``task_totals``, one row each — the ``limit`` costliest;
    * the others that may have calls in it (across one of its ends, or of several teams):
      their calls in the window from :func:`task_calls_sql`, summed per task.

    The first set is ranked on the cost alone, and only the chosen tasks' other columns
    are read (by the table's key, ``task_id``).

    Ordered by the cost as Float64 first (cheap to sort, and monotonic, so ordering by it
    and then by the exact cost is ordering by the exact cost), then by the exact cost.

    ``listed``: the others are bound as ``{partial:Array(String)}`` (else selected by a
    subquery); ``partial=False``: there are none (the lookup found none), nothing to read.
    ``folded``: the ranking reads ``task_totals`` by :func:`task_totals_read` (there are
    parts besides the merged one), else with ``FINAL`` (it merges nothing at rest).
    """
    ranked = (
        task_totals_read(_WHOLE, ("cost_usd",), needs_calls=True)
        if folded
        else f"task_totals FINAL\n        WHERE {_WHOLE}"
    )
    others = ""
    if partial:
        others = f"""    UNION ALL
    SELECT task_id, any(team), any(workflow), toUInt64(sum(n_calls)), toUInt256(sum(n_tokens)),
        sum(n_cost_usd), toUInt64(sum(n_retries)), toUInt256(sum(n_tool_calls)), min(n_first),
        max(n_last)
    FROM (
        {task_calls_sql(_partial(False, listed))}
    )
    GROUP BY task_id
    HAVING sum(n_calls) > 0
"""
    return f"""SELECT task_id, task_team, task_workflow, calls, tokens, cost_usd, retries,
    tool_calls, first_call, last_call
FROM (
    SELECT task_id, team_min AS task_team, workflow_min AS task_workflow,
        toUInt64(calls) AS calls, toUInt256(tokens) AS tokens, cost_usd,
        toUInt64(retries) AS retries, toUInt256(tool_calls) AS tool_calls,
        CAST(first_call AS {_TS}) AS first_call, CAST(last_call AS {_TS}) AS last_call
    FROM task_totals FINAL
    WHERE task_id IN (
        SELECT task_id
        FROM {ranked}
        ORDER BY {_RANK}
        LIMIT {{limit:UInt32}}
    ) AND {_WHOLE}
{others})
ORDER BY {_RANK}
LIMIT {{limit:UInt32}}
{ONE_SNAPSHOT}"""


def task_outcomes_sql() -> str:
    """The outcome of each of some tasks (a success wins over other reports of one task)."""
    return """SELECT task_id, if(countIf(status = 'success') > 0, 'success', any(status))
FROM task_outcomes WHERE task_id IN {tasks:Array(String)} GROUP BY task_id"""


def unit_economics_sql(*, listed: bool = False, partial: bool = True, folded: bool = False) -> str:
    """Per workflow over the tasks that called a model in the window.

    success: an outcome ``success`` with quality at or above the workflow's
    ``quality_bar`` (when the policy sets one). tokens_per_outcome: tokens of the
    tasks that reported an outcome ÷ their number. cost_per_successful_task: the
    cost of *all* the workflow's tasks ÷ its successes (failures are part of
    the price of a success). retry_token_ratio: tokens of calls with
    attempt > 1 ÷ all tokens.

    A task's outcome: its latest (by ``ts``) if that is not before ``since``. The tasks as
    in :func:`top_tasks_sql`: those wholly in the window (and of one workflow) from
    ``task_totals``, with their outcome on the same row — no join; the others per
    (workflow, task) from :func:`task_calls_sql`, joined with their outcome (``listed``,
    ``partial`` and ``folded`` as in :func:`top_tasks_sql`). Its parameters besides the
    window's: the bars (``{bar_workflows:Array(String)}``, ``{bar_values:Array(Float64)}``)
    and ``{outcome_from:UInt128}`` (:func:`outcome_from` of ``since``), as
    :func:`task_statement` binds them.
    """
    whole = (
        task_totals_read(
            _WHOLE_ONE_WORKFLOW,
            ("workflow_min", "tokens", "retry_tokens", "cost_usd", "outcome"),
            needs_calls=True,
        )
        if folded
        else f"task_totals FINAL\n    WHERE {_WHOLE_ONE_WORKFLOW}"
    )
    # The sums stay Int256 (no conversion per task: the ratios are Float64 either way).
    # The others are grouped by (workflow, task) as one string key: length-prefixed, so that
    # it is injective; ClickHouse hashes one string ~1.7× faster than the pair (measured).
    others = ""
    if partial:
        only = _partial(True, listed)
        others = f"""    UNION ALL
    SELECT p.t_workflow, p.tokens, p.retry_tokens, p.cost_usd, o.outcome
    FROM (
        SELECT any(workflow) AS t_workflow, any(task_id) AS t_task,
            sum(n_tokens) AS tokens, sum(n_retry_tokens) AS retry_tokens,
            sum(n_cost_usd) AS cost_usd
        FROM (
            {task_calls_sql(only)}
        )
        GROUP BY concat(toString(length(task_id)), ':', task_id, toString(workflow))
        HAVING sum(n_calls) > 0
    ) AS p
    ANY LEFT JOIN (
        SELECT task_id, outcome FROM task_totals FINAL WHERE {only}
    ) AS o ON p.t_task = o.task_id
"""
    return f"""WITH tasks AS (
    SELECT workflow_min AS t_workflow, tokens, retry_tokens, cost_usd, outcome
    FROM {whole}
{others}),
joined AS (
    SELECT t_workflow AS workflow, tokens, retry_tokens, cost_usd,
        {_HAS_OUTCOME} AS has_outcome,
        has_outcome AND {_SUCCESS_STATUS}
            AND (isNaN({_BAR} AS bar) OR {_QUALITY_OR_LESS} >= bar) AS success
    FROM tasks
)
SELECT workflow,
    count() AS tasks,
    countIf(has_outcome) AS tasks_with_outcome,
    countIf(success) AS successes,
    round(successes / nullIf(tasks_with_outcome, 0), 4) AS success_rate,
    round(sumIf(tokens, has_outcome) / nullIf(tasks_with_outcome, 0), 1)
        AS tokens_per_outcome,
    sum(cost_usd) AS cost_usd,
    if(successes = 0, NULL, cost_usd / successes)
        AS cost_per_successful_task,
    round(sum(retry_tokens) / nullIf(sum(tokens), 0), 4) AS retry_token_ratio
FROM joined
GROUP BY workflow
ORDER BY cost_usd DESC, workflow
{ONE_SNAPSHOT}"""


def budget_spend_sql() -> str:
    return """SELECT team, workflow,
    sumIf(cost_usd, day = {today:Date}) AS cost_day,
    sumIf(input_tokens + output_tokens, day = {today:Date}) AS tokens_day,
    sum(cost_usd) AS cost_month,
    sum(input_tokens + output_tokens) AS tokens_month
FROM spend_daily
WHERE day >= toStartOfMonth({today:Date}) AND day <= {today:Date}
GROUP BY team, workflow"""


def alerts_sql() -> str:
    return f"""SELECT team, kind, severity, count() AS alerts,
    countIf(state = 'firing') AS firing, countIf(state = 'resolved') AS resolved,
    max(last_seen) AS last_alert
FROM (
    SELECT alert_id, team, kind, severity,
        if(countIf(status = 'resolved') > 0, 'resolved', 'firing') AS state,
        max(starts_at) AS last_seen
    FROM alerts
    WHERE starts_at >= {{since:DateTime64(3, 'UTC')}} AND starts_at < {{until:DateTime64(3, 'UTC')}}
      AND {_TEAM}
    GROUP BY alert_id, team, kind, severity
)
GROUP BY team, kind, severity
ORDER BY alerts DESC, team, kind, severity"""


def coverage_sql() -> str:
    u = f"'{UNATTRIBUTED}'"
    measures = f"""sum(n) AS calls,
    round(sumIf(n, team != {u}) / nullIf(sum(n), 0), 4) AS team_coverage,
    round(sumIf(n, workflow != {u}) / nullIf(sum(n), 0), 4) AS workflow_coverage,
    round(toFloat64(sumIf(usd, team != {u} AND workflow != {u}))
        / nullIf(toFloat64(sum(usd)), 0), 4) AS cost_coverage,
    sumIf(usd, team = {u} OR workflow = {u}) AS unattributed_cost_usd,
    sum(unpriced) AS unpriced_calls,
    sum(no_usage) AS missing_usage_calls"""
    rows = """(SELECT day, team, workflow, calls AS n, cost_usd AS usd, unpriced_calls AS unpriced,
        missing_usage_calls AS no_usage
    FROM spend_daily
    WHERE day >= toDate({since:DateTime64(3, 'UTC')})
      AND day <= toDate({until:DateTime64(3, 'UTC')} - INTERVAL 1 MILLISECOND))"""
    return f"""SELECT day, calls, team_coverage, workflow_coverage, cost_coverage,
    unattributed_cost_usd, unpriced_calls, missing_usage_calls
FROM (
    SELECT toString(day) AS day, 0 AS total, {measures}
    FROM {rows} GROUP BY day
    UNION ALL
    SELECT 'total' AS day, 1 AS total, {measures}
    FROM {rows}
)
ORDER BY total, day"""


# -- runners --------------------------------------------------------------------------


def _spend(reader: Reader, window: ReportWindow) -> QueryResult:
    return reader.query(spend_sql(), window.parameters())


def task_statement(name: str, reader: Reader, window: ReportWindow) -> tuple[str, dict[str, Any]]:
    """The statement of ``top-tasks`` or ``unit-economics`` (``name``) for ``window`` and its
    parameters: the parts of ``task_totals`` looked up first (:data:`TASK_TOTALS_PARTS_SQL`:
    with parts besides the merged one, the statement reads it ``folded``, see
    :func:`top_tasks_sql`), then the partial tasks (:func:`partial_tasks_sql`), bound as
    a list when there are at most :data:`MAX_LISTED_PARTIAL_TASKS` (none: the statement has
    no part for them), else selected by the statement itself."""
    one_workflow = name == "unit-economics"
    if not one_workflow and name != "top-tasks":
        raise ValueError(f"{name!r} is not a per-task report")
    parameters = window.parameters() | whole_hours(window)
    if one_workflow:
        bars: dict[str, float] = {}
        if window.policy is not None:
            bars = {
                workflow: p.quality_bar
                for workflow, p in window.policy.cost_profiles.items()
                if p.quality_bar is not None
            }
        parameters |= {
            "bar_workflows": list(bars),
            "bar_values": list(bars.values()),
            "outcome_from": outcome_from(window.since),
        }
    parts = task_totals_parts(reader)
    parameters["merged_part"] = parts[0][0] if parts and parts[0][1] else ""
    # At rest (one merged part) FINAL merges nothing; else it would merge every row it reads.
    folded = len(parts) > 1 or not parameters["merged_part"]
    lookup = reader.query(
        partial_tasks_sql(one_workflow, at_rest=not folded),
        parameters | {"listed": MAX_LISTED_PARTIAL_TASKS},
    ).rows
    # (one row; none on a server whose profile sets empty_result_for_aggregation_by_empty_set)
    found = lookup[0][0] if lookup else []
    listed = len(found) <= MAX_LISTED_PARTIAL_TASKS
    if listed:
        parameters["partial"] = [str(task) for task in found]
    build = unit_economics_sql if one_workflow else top_tasks_sql
    return build(listed=listed, partial=bool(found), folded=folded), parameters


def _top_tasks(reader: Reader, window: ReportWindow) -> QueryResult:
    # Two queries: ClickHouse would compute a CTE once per reference.
    ranked = reader.query(*task_statement("top-tasks", reader, window))
    tasks = [str(row[0]) for row in ranked.rows]
    outcomes = dict(reader.query(task_outcomes_sql(), {"tasks": tasks}).rows) if tasks else {}
    columns = ["task_id", "team", "workflow", *ranked.columns[3:], "outcome"]
    rows = [(*row, str(outcomes.get(row[0], ""))) for row in ranked.rows]
    return QueryResult(columns, [*ranked.types, "String"], rows)


def _unit_economics(reader: Reader, window: ReportWindow) -> QueryResult:
    return reader.query(*task_statement("unit-economics", reader, window))


def _alerts(reader: Reader, window: ReportWindow) -> QueryResult:
    return reader.query(alerts_sql(), window.parameters())


def _coverage(reader: Reader, window: ReportWindow) -> QueryResult:
    return reader.query(coverage_sql(), window.parameters())


def _period(budget: Budget, at: datetime) -> tuple[datetime, datetime]:
    day = at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if budget.period == "day":
        return day, day + timedelta(days=1)
    start = day.replace(day=1)
    days = calendar.monthrange(start.year, start.month)[1]
    return start, start + timedelta(days=days)


def _pct(spent: Decimal | int, limit: Decimal | int | None) -> float | None:
    if not limit:
        return None
    return round(float(Decimal(spent) / Decimal(limit)), 4)


def _budgets(reader: Reader, window: ReportWindow) -> QueryResult:
    if window.policy is None:
        raise ValueError("the budgets report needs the policy (--policy or TOKENGOV_POLICY)")
    at = window.until
    spend = reader.query(budget_spend_sql(), {"today": at.astimezone(UTC).date().isoformat()})
    columns = [
        "budget_id",
        "period_start",
        "spent_usd",
        "limit_usd",
        "used_usd",
        "spent_tokens",
        "limit_tokens",
        "used_tokens",
        "forecast_usd",
        "status",
    ]
    rows: list[tuple[Any, ...]] = []
    for budget in window.policy.budgets:
        spent_usd, spent_tokens = Decimal(0), 0
        for team, workflow, cost_day, tokens_day, cost_month, tokens_month in spend.rows:
            name = team if budget.scope == "team" else workflow
            if name != budget.name:
                continue
            daily = budget.period == "day"
            spent_usd += Decimal(str(cost_day if daily else cost_month))
            spent_tokens += int(tokens_day if daily else tokens_month)
        start, end = _period(budget, at)
        elapsed = max((at - start).total_seconds(), 1.0)
        forecast = spent_usd * Decimal((end - start).total_seconds() / elapsed)
        used = [
            u
            for u in (_pct(spent_usd, budget.limit_usd), _pct(spent_tokens, budget.limit_tokens))
            if u is not None
        ]
        crossed = [t for t in sorted(budget.thresholds) if used and max(used) >= t]
        status = (
            "breached"
            if used and max(used) >= 1.0
            else (f"over {crossed[-1]:.0%}" if crossed else "ok")
        )
        rows.append(
            (
                budget.budget_id,
                start.date().isoformat(),
                spent_usd.quantize(Decimal("0.000001")),
                budget.limit_usd,
                _pct(spent_usd, budget.limit_usd),
                spent_tokens,
                budget.limit_tokens,
                _pct(spent_tokens, budget.limit_tokens),
                forecast.quantize(Decimal("0.01")),
                status,
            )
        )
    types = [
        "String",
        "String",
        "Decimal",
        "Nullable(Decimal)",
        "Nullable(Float64)",
        "UInt64",
        "Nullable(UInt64)",
        "Nullable(Float64)",
        "Decimal",
        "String",
    ]
    return QueryResult(columns, types, rows)


@dataclass(frozen=True)
class Report:
    name: str
    description: str
    run: Callable[[Reader, ReportWindow], QueryResult] = field(repr=False)
    needs_policy: bool = False


REPORTS: Final[dict[str, Report]] = {
    r.name: r
    for r in (
        Report("spend", "spend by team, workflow and model (hourly rollup)", _spend),
        Report("top-tasks", "the most expensive tasks, with their outcome", _top_tasks),
        Report(
            "unit-economics",
            "per workflow: success rate, tokens per outcome, cost per "
            "successful task, retry token ratio",
            _unit_economics,
        ),
        Report(
            "budgets",
            "each budget of the policy: spent, % used, forecast, status",
            _budgets,
            needs_policy=True,
        ),
        Report("alerts", "alerts by team, kind and severity", _alerts),
        Report("coverage", "attribution coverage and unpriced calls per day", _coverage),
    )
}


def run_report(name: str, reader: Reader, window: ReportWindow) -> QueryResult:
    try:
        report = REPORTS[name]
    except KeyError:
        raise ValueError(f"no report {name!r}; choose one of {', '.join(REPORTS)}") from None
    return report.run(reader, window)
