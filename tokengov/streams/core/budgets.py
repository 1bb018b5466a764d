"""Budgets (stage 2): running totals per scope and period, thresholds, forecast, breach.

The totals are the sum over partitions of their cumulative partials (so from
deduplicated events). Each configured threshold alerts once per period and
unit (USD, tokens); crossing 100% is the breach that causes the budget's
``on_breach`` decision, once per period. The forecast alerts once per period
when the burn rate — over the trailing ``forecast_window`` of event time,
or since the period began when less has elapsed — projects a breach before
the period ends, and says when. A new period is a new key: rollover starts
from zero, and the old period's flags go with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from tokengov.core.calls import usd
from tokengov.core.policy import Budget, StreamsSettings
from tokengov.streams.core.alerts import fingerprint, make_alert
from tokengov.streams.core.codec import big, wide
from tokengov.streams.core.decisions import budget_decision
from tokengov.streams.core.output import Output
from tokengov.streams.core.timeutil import MINUTE_MS, from_ms, iso_ms, period_bounds

__all__ = ["BudgetAgg", "evaluate_budget"]

PERIOD_WORD = {"day": "daily", "month": "monthly"}


@dataclass
class BudgetAgg:
    budget_id: str
    period: str
    parts: dict[int, list[int]] = field(default_factory=dict)  # p -> [v, tokens, femto, calls]
    fired: list[str] = field(default_factory=list)
    breached: bool = False
    forecast_fired: bool = False
    samples: dict[int, list[Any]] = field(default_factory=dict)  # minute_ms -> [tokens, USD]

    def merge(self, partition: int, v: int, tokens: int, cost_femto: int, calls: int) -> bool:
        prev = self.parts.get(partition)
        if prev is not None and prev[0] >= v:
            return False
        self.parts[partition] = [v, big(tokens), big(cost_femto), big(calls)]
        return True

    @property
    def tokens(self) -> int:
        return sum(p[1] for p in self.parts.values())

    @property
    def cost_usd(self) -> Decimal:
        return usd(sum(p[2] for p in self.parts.values()))

    @property
    def calls(self) -> int:
        return sum(p[3] for p in self.parts.values())

    def to_doc(self) -> dict[str, Any]:
        return {
            "budget_id": self.budget_id,
            "period": self.period,
            "parts": [[p, v, wide(t), wide(c), wide(n)] for p, (v, t, c, n) in self.parts.items()],
            "fired": self.fired,
            "breached": self.breached,
            "forecast_fired": self.forecast_fired,
            "samples": [[m, wide(t), str(c)] for m, (t, c) in self.samples.items()],
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> BudgetAgg:
        agg = cls(doc["budget_id"], doc["period"])
        agg.parts = {p: [v, big(t), big(c), big(n)] for p, v, t, c, n in doc["parts"]}
        agg.fired = list(doc["fired"])
        agg.breached = doc["breached"]
        agg.forecast_fired = doc["forecast_fired"]
        agg.samples = {m: [big(t), Decimal(c)] for m, t, c in doc["samples"]}
        return agg


def _money(value: Decimal) -> str:
    return f"${value:,.2f}"


def _amount(unit: str, value: Decimal | int) -> str:
    return _money(Decimal(value)) if unit == "usd" else f"{int(value):,} tokens"


def _limits(budget: Budget) -> list[tuple[str, Decimal]]:
    out: list[tuple[str, Decimal]] = []
    if budget.limit_usd is not None:
        out.append(("usd", budget.limit_usd))
    if budget.limit_tokens is not None:
        out.append(("tokens", Decimal(budget.limit_tokens)))
    return out


def evaluate_budget(
    agg: BudgetAgg,
    budget: Budget,
    team: str,
    watermark_ms: int,
    settings: StreamsSettings,
    now: datetime,
    out: Output,
) -> None:
    """Check thresholds, breach and forecast of one budget period after its totals changed."""
    start_ms, end_ms = period_bounds(agg.period)
    spent = {"usd": agg.cost_usd, "tokens": Decimal(agg.tokens)}
    who = f"{budget.scope} {budget.name}"
    word = PERIOD_WORD[budget.period]
    labels = {"budget": budget.budget_id, "period": agg.period}
    for unit, limit in _limits(budget):
        ratio = spent[unit] / limit
        for threshold in sorted(budget.thresholds):
            key = f"{unit}:{threshold}"
            if ratio < Decimal(str(threshold)) or key in agg.fired:
                continue
            agg.fired.append(key)
            out.alert(
                make_alert(
                    kind="budget_threshold",
                    fingerprint=fingerprint(
                        "budget_threshold", team, budget.budget_id, agg.period, unit, threshold
                    ),
                    severity="critical" if threshold >= 1 else "warning",
                    team=team,
                    workflow=budget.name if budget.scope == "workflow" else None,
                    labels={**labels, "unit": unit, "threshold": str(threshold)},
                    summary=(
                        f"{who} has spent {_amount(unit, spent[unit])} of its "
                        f"{_amount(unit, limit)} {word} budget ({float(ratio):.0%}; "
                        f"threshold {threshold:.0%}) in {agg.period}"
                    ),
                    evidence={
                        "unit": unit,
                        "spent": str(spent[unit]),
                        "limit": str(limit),
                        "ratio": round(float(ratio), 4),
                        "threshold": threshold,
                        "period": agg.period,
                    },
                    starts_at=now,
                )
            )
        if ratio >= 1 and not agg.breached:
            agg.breached = True
            reason = (
                f"budget {budget.budget_id} breached in {agg.period}: "
                f"{_amount(unit, spent[unit])} of {_amount(unit, limit)}"
            )
            decision = budget_decision(budget, reason, now, from_ms(end_ms))
            if decision is not None:
                out.decide(
                    decision,
                    fingerprint("budget_breach", team, budget.budget_id, agg.period),
                )
    if budget.forecast:
        _forecast(agg, budget, team, watermark_ms, start_ms, end_ms, spent, settings, now, out)


def _forecast(
    agg: BudgetAgg,
    budget: Budget,
    team: str,
    watermark_ms: int,
    start_ms: int,
    end_ms: int,
    spent: dict[str, Decimal],
    settings: StreamsSettings,
    now: datetime,
    out: Output,
) -> None:
    now_ms = min(max(watermark_ms, start_ms), end_ms)
    minute = now_ms - now_ms % MINUTE_MS
    window_ms = int(settings.forecast_window.total_seconds() * 1000)
    agg.samples[minute] = [int(spent["tokens"]), spent["usd"]]
    for old in [m for m in agg.samples if m < now_ms - window_ms - MINUTE_MS]:
        del agg.samples[old]
    elapsed = now_ms - start_ms
    if agg.forecast_fired or agg.breached:
        return
    if elapsed < settings.forecast_min_elapsed.total_seconds() * 1000 or elapsed <= 0:
        return
    base_ms, base = start_ms, {"tokens": Decimal(0), "usd": Decimal(0)}
    if elapsed > window_ms:
        candidates = [m for m in agg.samples if m >= now_ms - window_ms]
        oldest = min(candidates) if candidates else None
        if oldest is not None and now_ms - oldest >= window_ms // 2:
            base_ms = oldest
            tokens, cost = agg.samples[oldest]
            base = {"tokens": Decimal(tokens), "usd": cost}
    span_ms = now_ms - base_ms
    if span_ms <= 0:
        return
    for unit, limit in _limits(budget):
        rate_per_ms = (spent[unit] - base[unit]) / span_ms
        if rate_per_ms <= 0 or spent[unit] >= limit:
            continue
        breach_ms = now_ms + int((limit - spent[unit]) / rate_per_ms)
        if breach_ms >= end_ms:
            continue
        agg.forecast_fired = True
        projected = spent[unit] + rate_per_ms * (end_ms - now_ms)
        per_hour = rate_per_ms * 3_600_000
        out.alert(
            make_alert(
                kind="budget_forecast",
                fingerprint=fingerprint("budget_forecast", team, budget.budget_id, agg.period),
                severity="warning",
                team=team,
                workflow=budget.name if budget.scope == "workflow" else None,
                labels={"budget": budget.budget_id, "period": agg.period, "unit": unit},
                summary=(
                    f"{budget.scope} {budget.name} is on track to exceed its "
                    f"{_amount(unit, limit)} {PERIOD_WORD[budget.period]} budget at "
                    f"{iso_ms(breach_ms)} (spent {_amount(unit, spent[unit])} by "
                    f"{iso_ms(now_ms)}, burning {_amount(unit, per_hour.quantize(Decimal('0.01')))}"
                    f"/h)"
                ),
                evidence={
                    "unit": unit,
                    "spent": str(spent[unit]),
                    "limit": str(limit),
                    "burn_rate_per_hour": str(per_hour.quantize(Decimal("0.0001"))),
                    "projected_breach_at": iso_ms(breach_ms),
                    "projected_at_period_end": str(projected.quantize(Decimal("0.0001"))),
                    "period": agg.period,
                    "period_end": iso_ms(end_ms),
                    "as_of": iso_ms(now_ms),
                },
                starts_at=now,
            )
        )
        return
