"""Stage 2: the sum of every partition's partials — budgets, windows, unit metrics, daily alerts.

Input: the cumulative partials of :class:`tokengov.streams.core.partition_totals.PartitionAggregates`
(``{"p", "v", "wm", "w", "b", "u", "m", "x", "z"}``). For each key and source
partition the value with the highest ``v`` wins, so a partial delivered twice
changes nothing. Event time is the largest watermark any partition reported.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import orjson

from tokengov.core.calls import to_femto
from tokengov.core.contracts import UNATTRIBUTED, Alert
from tokengov.core.recovery import RecoverySeed
from tokengov.streams.core.alerts import fingerprint
from tokengov.streams.core.budgets import BudgetAgg, evaluate_budget
from tokengov.streams.core.clock import Clock
from tokengov.streams.core.daily import (
    missing_profile_alert,
    missing_usage_alert,
    unpriced_model_alert,
)
from tokengov.streams.core.output import Output
from tokengov.streams.core.policy_index import PolicyView
from tokengov.streams.core.timeutil import DAY_MS, period_bounds, period_key
from tokengov.streams.core.units import UnitAgg, unit_metric
from tokengov.streams.core.windows import WindowGroup, publish_window

__all__ = ["Aggregator"]

log = logging.getLogger(__name__)

META_KEY = "meta"
WINDOW_RETENTION_MS = 600_000  # published windows wait this long (event time) for laggards
WINDOW_RETENTION_IDLE_S = 600.0
#: The part of a budget's total that was rebuilt from the store (no partition sends it):
#: partials of the real partitions add to it, so stored spend and new spend count once each.
SEED_PARTITION = -1


class Aggregator:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.watermarks: dict[int, int] = {}
        self.budgets: dict[tuple[str, str], BudgetAgg] = {}
        self.windows: dict[tuple[int, int], WindowGroup] = {}
        self.units: dict[tuple[str, str], UnitAgg] = {}
        self.once: dict[str, int] = {}  # fingerprint -> day end (ms), for expiry
        self.closed_until: dict[int, int] = {}  # window size -> latest start dropped
        self.late_partials = 0
        self._dirty: set[str] = set()
        self._removed: set[str] = set()

    @property
    def watermark_ms(self) -> int:
        return max(self.watermarks.values(), default=0)

    # ------------------------------------------------------------ input

    def apply(self, partial: dict[str, Any], view: PolicyView, out: Output) -> None:
        p, v = int(partial["p"]), int(partial["v"])
        now = self.clock.now()
        now_s = now.timestamp()
        if partial["wm"] > self.watermarks.get(p, 0):
            self.watermarks[p] = partial["wm"]
            self._dirty.add(META_KEY)
        for size, start, team, wf, agent, model, ints, cost in partial["w"]:
            if start <= self.closed_until.get(size, -1):
                self.late_partials += 1
                continue
            group = self.windows.get((size, start))
            if group is None:
                group = self.windows[(size, start)] = WindowGroup(size, start)
            if group.merge((team, wf, agent, model), p, v, ints, cost):
                group.touched_s = now_s
                self._dirty.add(f"w|{size}|{start}")
        touched: list[BudgetAgg] = []
        for budget_id, period, tokens, cost, calls in partial["b"]:
            agg = self.budgets.get((budget_id, period))
            if agg is None:
                agg = self.budgets[(budget_id, period)] = BudgetAgg(budget_id, period)
            if agg.merge(p, v, tokens, cost, calls):
                touched.append(agg)
        for wf, day, team, ints, floats, cost in partial["u"]:
            unit = self.units.get((wf, day))
            if unit is None:
                unit = self.units[(wf, day)] = UnitAgg(wf, day)
            if unit.merge(p, v, team, ints, floats, cost):
                self._dirty.add(f"u|{wf}|{day}")
        for wf, day, team, calls in partial["m"]:
            if wf in view.profiles or wf == UNATTRIBUTED:
                continue
            self._once(missing_profile_alert(wf, team, day, calls, now), day, out)
        for model, day, team, calls, tokens in partial["x"]:
            self._once(unpriced_model_alert(model, team, day, calls, tokens, now), day, out)
        for wf, day, team, calls in partial.get("z", ()):  # absent in partials before it
            self._once(missing_usage_alert(wf, team, day, calls, now), day, out)
        for agg in touched:
            self._evaluate(agg, view, out)

    def _once(self, alert: Alert, day: str, out: Output) -> None:
        """Alert once per subject and day (fingerprints carry the day)."""
        if alert.fingerprint in self.once:
            return
        self.once[alert.fingerprint] = period_bounds(day)[1]
        self._dirty.add(META_KEY)
        out.alert(alert)

    def _evaluate(self, agg: BudgetAgg, view: PolicyView, out: Output) -> None:
        self._dirty.add(f"b|{agg.budget_id}|{agg.period}")
        budget = view.budgets.get(agg.budget_id)
        if budget is None:
            return  # removed from the policy by a reload
        evaluate_budget(
            agg,
            budget,
            view.budget_team(budget),
            self.watermark_ms,
            view.settings,
            self.clock.now(),
            out,
        )

    # ------------------------------------------------------------ recovery

    def seed(self, seed: RecoverySeed, view: PolicyView) -> int:
        """Rebuild the current period of every budget from the spend already stored.

        Only for an aggregator whose state was gone (nothing loaded): the stored spend
        becomes the :data:`SEED_PARTITION` part of each budget, thresholds whose alert was
        published are marked fired, a budget already at its limit counts as breached (its
        decision, if still in force, is re-published from the store), and so is a forecast
        already sent. Returns how many budget periods were seeded."""
        now_ms = int(seed.as_of.timestamp() * 1000)
        seeded = 0
        for budget in view.budgets.values():
            period = period_key(now_ms, budget.period)
            tokens = cost_femto = calls = 0
            for row in seed.spend:
                subject = row.team if budget.scope == "team" else row.workflow
                day_ms = period_bounds(row.day.isoformat())[0]
                if subject != budget.name or period_key(day_ms, budget.period) != period:
                    continue
                tokens += row.tokens
                cost_femto += to_femto(row.cost_usd)
                calls += row.calls
            if not calls and not tokens and not cost_femto:
                continue
            agg = self.budgets.get((budget.budget_id, period))
            if agg is None:
                agg = self.budgets[(budget.budget_id, period)] = BudgetAgg(budget.budget_id, period)
            agg.merge(SEED_PARTITION, 0, tokens, cost_femto, calls)
            team = view.budget_team(budget)
            spent = {"usd": agg.cost_usd, "tokens": Decimal(agg.tokens)}
            limits = {"usd": budget.limit_usd, "tokens": budget.limit_tokens}
            for unit, limit in limits.items():
                if limit is None:
                    continue
                for threshold in budget.thresholds:
                    fp = fingerprint(
                        "budget_threshold", team, budget.budget_id, period, unit, threshold
                    )
                    key = f"{unit}:{threshold}"
                    if fp in seed.fired and key not in agg.fired:
                        agg.fired.append(key)
                if spent[unit] >= Decimal(limit):
                    agg.breached = True
            if fingerprint("budget_forecast", team, budget.budget_id, period) in seed.fired:
                agg.forecast_fired = True
            self._dirty.add(f"b|{budget.budget_id}|{period}")
            seeded += 1
        return seeded

    # ------------------------------------------------------------ time

    def tick(self, view: PolicyView, out: Output) -> None:
        """Publish windows that closed and unit metrics that are due; forget what is done."""
        now = self.clock.now()
        now_s = now.timestamp()
        wm = self.watermark_ms
        grace_ms = view.late_grace_ms
        idle_s = view.settings.window_idle_close.total_seconds()
        min_coverage = view.settings.min_attribution_coverage
        for key, group in list(self.windows.items()):
            closed = wm >= group.end_ms + grace_ms or now_s - group.touched_s >= idle_s
            if closed and (group.revision < 0 or group.changed):
                publish_window(group, min_coverage, now, out)
                self._dirty.add(f"w|{key[0]}|{key[1]}")
            retention_ms = max(group.size_ms, WINDOW_RETENTION_MS)
            expired = wm >= group.end_ms + grace_ms + retention_ms or (
                now_s - group.touched_s >= max(WINDOW_RETENTION_IDLE_S, 10 * idle_s)
            )
            if group.revision >= 0 and not group.changed and expired:
                del self.windows[key]
                self.closed_until[key[0]] = max(self.closed_until.get(key[0], -1), key[1])
                self._removed.add(f"w|{key[0]}|{key[1]}")
                self._dirty.add(META_KEY)
        interval_s = view.settings.unit_metrics_interval.total_seconds()
        for unit_key, unit in list(self.units.items()):
            day_end = period_bounds(unit.day)[1]
            day_over = wm >= day_end + grace_ms
            if unit.changed and (now_s - unit.published_s >= interval_s or day_over):
                out.metric(
                    f"unit|{unit.day}|{unit.workflow}",
                    unit_metric(unit, view.profiles.get(unit.workflow), now),
                )
                self._dirty.add(f"u|{unit.workflow}|{unit.day}")
            if day_over and not unit.changed and wm >= day_end + DAY_MS:
                del self.units[unit_key]
                self._removed.add(f"u|{unit.workflow}|{unit.day}")
        for budget_key, agg in list(self.budgets.items()):
            if wm >= period_bounds(agg.period)[1] + max(grace_ms, DAY_MS):
                del self.budgets[budget_key]
                self._removed.add(f"b|{agg.budget_id}|{agg.period}")
        stale = [fp for fp, end in self.once.items() if wm >= end + DAY_MS]
        for fp in stale:
            del self.once[fp]
        if stale:
            self._dirty.add(META_KEY)

    # ------------------------------------------------------------ persistence

    def take_records(self) -> list[tuple[str, bytes | None]]:
        records: list[tuple[str, bytes | None]] = []
        for key in sorted(self._dirty):
            if key in self._removed:
                continue
            kind, _, rest = key.partition("|")
            doc: Any
            if key == META_KEY:
                doc = {
                    "watermarks": list(self.watermarks.items()),
                    "once": self.once,
                    "closed_until": list(self.closed_until.items()),
                    "late_partials": self.late_partials,
                }
            elif kind == "w":
                size, start = (int(x) for x in rest.split("|"))
                group = self.windows.get((size, start))
                if group is None:
                    continue
                doc = group.to_doc()
            elif kind == "u":
                wf, day = rest.rsplit("|", 1)
                unit = self.units.get((wf, day))
                if unit is None:
                    continue
                doc = unit.to_doc()
            else:
                budget_id, period = rest.rsplit("|", 1)
                agg = self.budgets.get((budget_id, period))
                if agg is None:
                    continue
                doc = agg.to_doc()
            records.append((key, orjson.dumps(doc)))
        records.extend((key, None) for key in sorted(self._removed))
        self._dirty.clear()
        self._removed.clear()
        return records

    @classmethod
    def load(cls, records: Iterable[tuple[str, bytes]], clock: Clock) -> Aggregator:
        agg = cls(clock)
        for key, raw in records:
            doc: Any = orjson.loads(raw)
            kind = key.partition("|")[0]
            if key == META_KEY:
                agg.watermarks = {int(p): wm for p, wm in doc["watermarks"]}
                agg.once = dict(doc["once"])
                agg.closed_until = {int(s): start for s, start in doc["closed_until"]}
                agg.late_partials = doc["late_partials"]
            elif kind == "w":
                group = WindowGroup.from_doc(doc)
                agg.windows[(group.size_ms, group.start_ms)] = group
            elif kind == "u":
                unit = UnitAgg.from_doc(doc)
                agg.units[(unit.workflow, unit.day)] = unit
            elif kind == "b":
                budget = BudgetAgg.from_doc(doc)
                agg.budgets[(budget.budget_id, budget.period)] = budget
            else:
                log.warning("aggregator: ignoring unknown state record %r", key)
        return agg
