"""System prompt growth: a workflow's system tokens trending up across days.

Tallies are kept per UTC day for ``system_prompt_days``. With at least
``system_prompt_min_days`` days of calls, the daily mean system tokens per call
are fitted with a least-squares line over the day number; the prompt grows when
the fitted line rises by at least ``system_prompt_min_growth`` (a fraction of
its first-day value) across the days observed.

Waste model: the prompt could have stayed at its size on the first day
observed; the latest day's mean system tokens per call beyond that baseline,
times the workflow's calls per day (mean over the days observed, less the
first and last, which are usually partial), is waste per
day, priced at the average input price the workflow paid for system tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from tokengov.core.policy import DebtPolicy
from tokengov.streams.debt.columns import PricedColumns, TaskBatch, TaskCalls
from tokengov.streams.debt.detectors.base import (
    DAY,
    Detector,
    JudgeContext,
    TallyFor,
    TaskContext,
    Verdict,
    confidence,
)
from tokengov.streams.debt.stats import r_squared, slope
from tokengov.streams.debt.tally import Tally

__all__ = ["SystemPromptGrowth"]


class SystemPromptGrowth(Detector):
    name = "system_prompt_growth"
    area = "system_prompt"
    per_agent = False
    bucket = DAY
    better_pattern = (
        "Version the system prompt with a token budget, review every addition, and move "
        "rarely needed instructions into retrieved or tool-scoped context."
    )

    def retention(self, policy: DebtPolicy) -> timedelta:
        return timedelta(days=policy.system_prompt_days)

    def tally_task(self, task: TaskCalls, ctx: TaskContext, tally_for: TallyFor) -> None:
        if task.all.n:
            self._add(task.all, tally_for)

    def tally_batch(self, batch: TaskBatch, ctx: TaskContext, tally_for: TallyFor) -> None:
        self._add(batch.inputs, tally_for)

    @staticmethod
    def _add(calls: PricedColumns, tally_for: TallyFor) -> None:
        """Add the calls of one task or more (:meth:`Columns.parts`, none empty)."""
        # summed here and added once per task: the same sums, in the same order, as one add
        # per call (a call without system tokens adds 0.0 to the USD: skipped); the integer
        # sums of several tasks added at once
        system = calls.system
        sums = calls.input_usd_float_sums(system) if max(system) > 0 else (0.0,)
        counts = tally_for(None).counts
        get = counts.get
        counts["calls"] = get("calls", 0) + calls.n
        counts["system_tokens"] = get("system_tokens", 0) + sum(system)
        usd = get("system_usd", 0)
        for system_usd in sums:
            usd = usd + system_usd
        counts["system_usd"] = usd

    def judge(self, buckets: Sequence[tuple[datetime, Tally]], ctx: JudgeContext) -> Verdict | None:
        days = [(start, t) for start, t in buckets if t.get("calls") > 0]
        total = self.total(days)
        if (
            len(days) < ctx.policy.system_prompt_min_days
            or total.get("calls") < ctx.policy.min_calls
        ):
            return None
        first_day = days[0][0]
        xs = [(start - first_day) / DAY for start, _ in days]
        means = [t.get("system_tokens") / t.get("calls") for _, t in days]
        rise = slope(xs, means)
        baseline = means[0]
        if baseline <= 0 or rise <= 0:
            return None
        growth = rise * (xs[-1] - xs[0]) / baseline
        excess_per_call = means[-1] - baseline
        if growth < ctx.policy.system_prompt_min_growth or excess_per_call <= 0:
            return None
        # The first and last days are usually partial: count calls per day on the others.
        interior = days[1:-1] if len(days) >= 3 else days
        calls_per_day = sum(t.get("calls") for _, t in interior) / len(interior)
        tokens_day = int(excess_per_call * calls_per_day)
        usd_per_token = Decimal(str(total.get("system_usd"))) / Decimal(
            str(max(1.0, total.get("system_tokens")))
        )
        fit = r_squared(xs, means)
        return Verdict(
            evidence={
                "days": len(days),
                "calls_per_day": round(calls_per_day),
                "system_tokens_per_call_first_day": round(baseline),
                "system_tokens_per_call_last_day": round(means[-1]),
                "growth_tokens_per_call_per_day": round(rise, 1),
                "growth_share": round(growth, 3),
                "fit_r_squared": round(fit, 3),
            },
            waste_tokens_per_day=tokens_day,
            waste_usd_per_day=(usd_per_token * tokens_day).quantize(Decimal("0.000001")),
            confidence=confidence(len(days), fit, half_at=3),
        )
