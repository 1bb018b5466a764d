"""One partition's share of the global aggregates, kept cumulative (stage 1).

Budgets, windows and unit metrics span every partition (a team's tasks are
spread over all of them). Each partition keeps its own running totals and
sends the keys that changed to the aggregator (stage 2) as *cumulative*
values tagged with the partition's position ``v``; the aggregator keeps, per
key and partition, the value with the highest ``v`` and sums across
partitions. Re-sending after a crash is therefore harmless.

Event time decides lateness: a key (a window, a budget period, a day) is open
while ``end + late_grace`` is not behind the partition's watermark (the
largest event timestamp seen); later events are counted in ``late_events``
only, and a closed key is never re-opened.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from tokengov.streams.core.codec import big
from tokengov.streams.core.timeutil import DAY_MS, HOUR_MS, MINUTE_MS, period_bounds

__all__ = [
    "UNIT_FLOAT_FIELDS",
    "UNIT_INT_FIELDS",
    "WINDOW_FIELDS",
    "WINDOW_SIZES_MS",
    "PartitionAggregates",
]

WINDOW_SIZES_MS: Final = (MINUTE_MS, HOUR_MS)
WINDOW_FIELDS: Final = (
    "calls",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "system_tokens",
    "tool_definitions_tokens",
    "retrieved_tokens",
    "history_tokens",
    "tool_responses_tokens",
    "handoff_tokens",
    "memory_tokens",
    "retries",
    "errors",
    "unpriced_calls",
)
UNIT_INT_FIELDS: Final = (
    "calls",
    "tokens",
    "retry_tokens",
    "first_attempt_tokens",
    "tasks_finished",
    "tasks_succeeded",
    "tasks_met_quality_bar",
    "amplification_tasks",
    "context_reports",
)
UNIT_FLOAT_FIELDS: Final = (
    "amplification_sum",
    "amplification_max",
    "context_utilization_sum",
    "context_utilization_max",
)

WindowKey = tuple[int, int, str, str, str, str]  # size, start, team, workflow, agent, model
BudgetKey = tuple[str, str]  # budget_id, period key
DayKey = tuple[str, str]  # subject (workflow / model), day


@dataclass
class UnitPartial:
    team: str
    ints: list[int] = field(default_factory=lambda: [0] * len(UNIT_INT_FIELDS))
    floats: list[float] = field(default_factory=lambda: [0.0] * len(UNIT_FLOAT_FIELDS))
    cost_femto: int = 0


@dataclass
class PartitionAggregates:
    partition: int
    late_grace_ms: int = 30_000
    applied_pos: int = -1
    watermark_ms: int = 0
    windows: dict[WindowKey, list[int]] = field(default_factory=dict)  # 16 counts + femto-USD
    budgets: dict[BudgetKey, list[int]] = field(default_factory=dict)  # tokens, femto-USD, calls
    units: dict[DayKey, UnitPartial] = field(default_factory=dict)
    missing: dict[DayKey, list[Any]] = field(default_factory=dict)  # team, calls
    unpriced: dict[DayKey, list[Any]] = field(default_factory=dict)  # team, calls, tokens
    no_usage: dict[DayKey, list[Any]] = field(default_factory=dict)  # (workflow, day): team, calls
    late_events: int = 0
    duplicates: int = 0
    clock_ahead_events: int = 0  # governed at processing time (tokengov.streams.core.skew)
    clock_behind_events: int = 0  # counted late
    skew_alerted: dict[str, int] = field(default_factory=dict)  # clock_skew fingerprint -> day end
    dirty_windows: set[WindowKey] = field(default_factory=set)
    dirty_budgets: set[BudgetKey] = field(default_factory=set)
    dirty_units: set[DayKey] = field(default_factory=set)
    dirty_missing: set[DayKey] = field(default_factory=set)
    dirty_unpriced: set[DayKey] = field(default_factory=set)
    dirty_no_usage: set[DayKey] = field(default_factory=set)
    changed: bool = False

    # ------------------------------------------------------------ lateness

    def _open(self, end_ms: int) -> bool:
        return end_ms + self.late_grace_ms >= self.watermark_ms

    def window_open(self, size_ms: int, start_ms: int) -> bool:
        return self._open(start_ms + size_ms)

    def day_open(self, day_start_ms: int) -> bool:
        return self._open(day_start_ms + DAY_MS)

    def period_open(self, period: str) -> bool:
        return self._open(period_bounds(period)[1])

    def advance(self, ts_ms: int) -> None:
        if ts_ms > self.watermark_ms:
            self.watermark_ms = ts_ms

    # ------------------------------------------------------------ updates

    def window(self, key: WindowKey) -> list[int]:
        row = self.windows.get(key)
        if row is None:
            row = self.windows[key] = [0] * (len(WINDOW_FIELDS) + 1)
        self.dirty_windows.add(key)
        self.changed = True
        return row

    def budget(self, key: BudgetKey, tokens: int, cost_femto: int) -> None:
        row = self.budget_row(key)
        row[0] += tokens
        row[1] += cost_femto
        row[2] += 1

    def budget_row(self, key: BudgetKey) -> list[int]:
        """The row of a budget period (tokens, femto-USD, calls), made if new, marked changed."""
        row = self.budgets.get(key)
        if row is None:
            row = self.budgets[key] = [0, 0, 0]
        self.dirty_budgets.add(key)
        self.changed = True
        return row

    def unit(self, key: DayKey, team: str) -> UnitPartial:
        row = self.units.get(key)
        if row is None:
            row = self.units[key] = UnitPartial(team)
        self.dirty_units.add(key)
        self.changed = True
        return row

    def missing_profile(self, key: DayKey, team: str) -> None:
        self.missing_row(key, team)[1] += 1

    def missing_row(self, key: DayKey, team: str) -> list[Any]:
        """The row (team, calls) of a workflow without a profile on a day, made if new."""
        row = self.missing.get(key)
        if row is None:
            row = self.missing[key] = [team, 0]
        self.dirty_missing.add(key)
        self.changed = True
        return row

    def unpriced_call(self, key: DayKey, team: str, tokens: int) -> None:
        row = self.unpriced.get(key)
        if row is None:
            row = self.unpriced[key] = [team, 0, 0]
        row[1] += 1
        row[2] += tokens
        self.dirty_unpriced.add(key)
        self.changed = True

    def missing_usage_call(self, key: DayKey, team: str) -> None:
        row = self.no_usage.get(key)
        if row is None:
            row = self.no_usage[key] = [team, 0]
        row[1] += 1
        self.dirty_no_usage.add(key)
        self.changed = True

    # ------------------------------------------------------------ output

    def take_partial(self) -> dict[str, Any] | None:
        """The cumulative values of every key changed since the last call (None: nothing)."""
        if not (
            self.dirty_windows
            or self.dirty_budgets
            or self.dirty_units
            or self.dirty_missing
            or self.dirty_unpriced
            or self.dirty_no_usage
        ):
            return None
        doc: dict[str, Any] = {
            "p": self.partition,
            "v": self.applied_pos,
            "wm": self.watermark_ms,
            "w": [
                [*k, row[:-1], row[-1]] for k in self.dirty_windows if (row := self.windows.get(k))
            ],
            "b": [[*k, r[0], r[1], r[2]] for k in self.dirty_budgets if (r := self.budgets.get(k))],
            "u": [
                [*k, u.team, u.ints, u.floats, u.cost_femto]
                for k in self.dirty_units
                if (u := self.units.get(k))
            ],
            "m": [[*k, *r] for k in self.dirty_missing if (r := self.missing.get(k))],
            "x": [[*k, *r] for k in self.dirty_unpriced if (r := self.unpriced.get(k))],
            "z": [[*k, *r] for k in self.dirty_no_usage if (r := self.no_usage.get(k))],
            "late": self.late_events,
            "dups": self.duplicates,
            "skew": [self.clock_ahead_events, self.clock_behind_events],
        }
        self.dirty_windows.clear()
        self.dirty_budgets.clear()
        self.dirty_units.clear()
        self.dirty_missing.clear()
        self.dirty_unpriced.clear()
        self.dirty_no_usage.clear()
        return doc

    def expire(self) -> int:
        """Drop keys that can no longer change (closed by the watermark). Call after
        :meth:`take_partial` so that their final values were sent."""
        before = len(self.windows) + len(self.budgets) + len(self.units)
        self.windows = {k: v for k, v in self.windows.items() if self.window_open(k[0], k[1])}
        self.budgets = {k: v for k, v in self.budgets.items() if self.period_open(k[1])}
        day_ms = {
            k: period_bounds(k[1])[0]
            for k in (*self.units, *self.missing, *self.unpriced, *self.no_usage)
        }
        self.units = {k: v for k, v in self.units.items() if self.day_open(day_ms[k])}
        self.missing = {k: v for k, v in self.missing.items() if self.day_open(day_ms[k])}
        self.unpriced = {k: v for k, v in self.unpriced.items() if self.day_open(day_ms[k])}
        self.no_usage = {k: v for k, v in self.no_usage.items() if self.day_open(day_ms[k])}
        self.skew_alerted = {
            fp: end for fp, end in self.skew_alerted.items() if end + DAY_MS > self.watermark_ms
        }
        dropped = before - (len(self.windows) + len(self.budgets) + len(self.units))
        if dropped:
            self.changed = True
        return dropped

    # ------------------------------------------------------------ persistence

    def to_doc(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "applied_pos": self.applied_pos,
            "watermark_ms": self.watermark_ms,
            "windows": [[*k, row[:-1], row[-1]] for k, row in self.windows.items()],
            "budgets": [[*k, r[0], r[1], r[2]] for k, r in self.budgets.items()],
            "units": [[*k, u.team, u.ints, u.floats, u.cost_femto] for k, u in self.units.items()],
            "missing": [[*k, *r] for k, r in self.missing.items()],
            "unpriced": [[*k, *r] for k, r in self.unpriced.items()],
            "no_usage": [[*k, *r] for k, r in self.no_usage.items()],
            "late_events": self.late_events,
            "duplicates": self.duplicates,
            "clock_ahead_events": self.clock_ahead_events,
            "clock_behind_events": self.clock_behind_events,
            "skew_alerted": self.skew_alerted,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any], late_grace_ms: int) -> PartitionAggregates:
        agg = cls(partition=doc["partition"], late_grace_ms=late_grace_ms)
        agg.applied_pos = doc["applied_pos"]
        agg.watermark_ms = doc["watermark_ms"]
        for size, start, team, wf, agent, model, ints, cost in doc["windows"]:
            agg.windows[(size, start, team, wf, agent, model)] = [*map(big, ints), big(cost)]
        for budget_id, period, tokens, cost, calls in doc["budgets"]:
            agg.budgets[(budget_id, period)] = [big(tokens), big(cost), big(calls)]
        for wf, day, team, ints, floats, cost in doc["units"]:
            agg.units[(wf, day)] = UnitPartial(team, [*map(big, ints)], list(floats), big(cost))
        for wf, day, team, calls in doc["missing"]:
            agg.missing[(wf, day)] = [team, big(calls)]
        for model, day, team, calls, tokens in doc["unpriced"]:
            agg.unpriced[(model, day)] = [team, big(calls), big(tokens)]
        for wf, day, team, calls in doc.get("no_usage", ()):  # absent in states before it
            agg.no_usage[(wf, day)] = [team, big(calls)]
        agg.late_events = doc["late_events"]
        agg.duplicates = doc["duplicates"]
        agg.clock_ahead_events = doc.get("clock_ahead_events", 0)
        agg.clock_behind_events = doc.get("clock_behind_events", 0)
        agg.skew_alerted = dict(doc.get("skew_alerted", {}))
        return agg
