"""Unit metrics (stage 2), per workflow and UTC day, always with the success rate beside them.

- ``tokens_per_outcome``: the workflow's tokens that day / tasks that succeeded
  *and* met the profile's ``quality_bar`` (what one good outcome costs,
  failures included);
- ``cost_per_successful_task``: the same in USD;
- ``success_rate`` (``success`` outcomes / outcomes) and ``quality_rate``
  (outcomes that met the bar / outcomes);
- ``retry_token_ratio``: tokens of retries (``attempt`` > 1) / tokens of first
  attempts;
- ``amplification_mean`` / ``_max``: a finished task's tokens (every call with
  its ``task_id``, across all its agents) / the profile's ``baseline_tokens``;
- ``context_utilization_mean`` / ``_max``: ``input / context_window`` over the
  calls that report ``context_window``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from tokengov.core.calls import usd, usd_str
from tokengov.core.policy import CostProfile
from tokengov.streams.core.codec import big, wide, wide_ints
from tokengov.streams.core.partition_totals import UNIT_FLOAT_FIELDS, UNIT_INT_FIELDS
from tokengov.streams.core.timeutil import iso_ms

__all__ = ["UnitAgg", "unit_metric"]


@dataclass
class UnitAgg:
    workflow: str
    day: str
    parts: dict[int, list[Any]] = field(default_factory=dict)  # p -> [v, team, ints, floats, femto]
    revision: int = -1
    changed: bool = False
    published_s: float = 0.0

    def merge(
        self,
        partition: int,
        v: int,
        team: str,
        ints: list[int],
        floats: list[float],
        cost: int,
    ) -> bool:
        prev = self.parts.get(partition)
        if prev is not None and prev[0] >= v:
            return False
        self.parts[partition] = [v, team, [*map(big, ints)], floats, big(cost)]
        self.changed = True
        return True

    def to_doc(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "day": self.day,
            "parts": [
                [p, v, t, wide_ints(i), f, wide(c)] for p, (v, t, i, f, c) in self.parts.items()
            ],
            "revision": self.revision,
            "changed": self.changed,
            "published_s": self.published_s,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> UnitAgg:
        agg = cls(doc["workflow"], doc["day"])
        agg.parts = {
            p: [v, t, [*map(big, i)], list(f), big(c)] for p, v, t, i, f, c in doc["parts"]
        }
        agg.revision = doc["revision"]
        agg.changed = doc["changed"]
        agg.published_s = doc["published_s"]
        return agg


def _ratio(num: float | Decimal, den: float | Decimal) -> float | None:
    return float(num) / float(den) if den else None


def unit_metric(agg: UnitAgg, profile: CostProfile | None, now: datetime) -> dict[str, Any]:
    """The published unit-metrics message for one workflow and day (bumps the revision)."""
    agg.revision += 1
    agg.changed = False
    agg.published_s = now.timestamp()
    ints = [0] * len(UNIT_INT_FIELDS)
    sums = {"amplification_sum": 0.0, "context_utilization_sum": 0.0}
    maxes = {"amplification_max": 0.0, "context_utilization_max": 0.0}
    femto = 0
    teams: dict[str, int] = {}
    for _, team, part_ints, floats, part_cost in agg.parts.values():
        for i, value in enumerate(part_ints):
            ints[i] += value
        named = dict(zip(UNIT_FLOAT_FIELDS, floats, strict=True))
        for key in sums:
            sums[key] += named[key]
        for key in maxes:
            maxes[key] = max(maxes[key], named[key])
        femto += part_cost
        teams[team] = teams.get(team, 0) + part_ints[0]
    c = dict(zip(UNIT_INT_FIELDS, ints, strict=True))
    cost = usd(femto)
    team = profile.team if profile else max(teams, key=lambda t: teams[t], default="unattributed")
    good = c["tasks_met_quality_bar"]
    cost_per = (cost / good).quantize(Decimal("0.000001")) if good else None
    return {
        "metric": "unit",
        "day": agg.day,
        "workflow": agg.workflow,
        "team": team,
        "calls": c["calls"],
        "tokens": c["tokens"],
        "cost_usd": usd_str(femto),
        "tasks_finished": c["tasks_finished"],
        "tasks_succeeded": c["tasks_succeeded"],
        "tasks_met_quality_bar": good,
        "success_rate": _ratio(c["tasks_succeeded"], c["tasks_finished"]),
        "quality_rate": _ratio(good, c["tasks_finished"]),
        "tokens_per_outcome": _ratio(c["tokens"], good),
        "cost_per_successful_task": None if cost_per is None else str(cost_per),
        "retry_tokens": c["retry_tokens"],
        "first_attempt_tokens": c["first_attempt_tokens"],
        "retry_token_ratio": _ratio(c["retry_tokens"], c["first_attempt_tokens"]),
        "amplification_mean": _ratio(sums["amplification_sum"], c["amplification_tasks"]),
        "amplification_max": maxes["amplification_max"] if c["amplification_tasks"] else None,
        "context_utilization_mean": _ratio(sums["context_utilization_sum"], c["context_reports"]),
        "context_utilization_max": maxes["context_utilization_max"]
        if c["context_reports"]
        else None,
        "quality_bar": profile.quality_bar if profile else None,
        "baseline_tokens": profile.baseline_tokens if profile else None,
        "expected_tokens_per_outcome": profile.expected_tokens_per_outcome if profile else None,
        "revision": agg.revision,
        "emitted_at": iso_ms(int(now.timestamp() * 1000)),
    }
