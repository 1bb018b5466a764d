"""Context management: the full transcript resent every turn, with little cache reuse.

Per task and agent, the history tokens of successive turns are fitted with a
least-squares line; a task whose history grows by at least
``history_min_growth_per_turn`` tokens per turn resends its transcript.
Waste model: a summarized (or windowed) history of bounded size
``history_budget_tokens`` would carry what the next turn needs; every history
token beyond that bound, on every call of a growing task, is waste, priced at
the call's input price. Fires when at least half the tasks grow and less than
``history_max_cache_share`` of the input is read from the provider's cache
(a cached transcript is cheap, so it is not flagged).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from itertools import pairwise

from tokengov.streams.debt.columns import Columns
from tokengov.streams.debt.detectors.base import (
    AgentDetector,
    JudgeContext,
    TaskContext,
    Verdict,
    flagged_share,
)
from tokengov.streams.debt.stats import slope
from tokengov.streams.debt.tally import Tally

__all__ = ["HistoryResend"]


class HistoryResend(AgentDetector):
    name = "history_resend"
    area = "context_management"
    better_pattern = (
        "Keep a bounded, summarized history (rolling window plus summary) and put the "
        "stable prefix first so the provider's prompt cache serves it."
    )

    def tally_agents(self, tally: Tally, calls: Columns, ctx: TaskContext) -> None:
        history = calls.history
        if min(history) != max(history) or ctx.policy.history_min_growth_per_turn <= 0:
            super().tally_agents(tally, calls, ctx)
            return
        # every task's history is constant: each multi-turn task adds a growth of 0.0 and is
        # not growing; the rest are integer sums, the same added at once as task by task
        counts, get = tally.counts, tally.counts.get
        self._sums(counts, calls)
        multi_turn = sum(hi - lo >= 3 for lo, hi in pairwise(calls.bounds))
        if multi_turn:
            counts["multi_turn_tasks"] = get("multi_turn_tasks", 0) + multi_turn
            counts["growth_tokens_per_turn_sum"] = get("growth_tokens_per_turn_sum", 0) + 0.0

    @staticmethod
    def _sums(counts: dict[str, float], calls: Columns) -> None:
        get = counts.get
        counts["input_tokens"] = get("input_tokens", 0) + sum(calls.input)
        counts["cached_input_tokens"] = get("cached_input_tokens", 0) + sum(calls.cached_input)
        counts["history_tokens"] = get("history_tokens", 0) + sum(calls.history)

    def tally_agent(self, tally: Tally, calls: Columns, ctx: TaskContext) -> None:
        budget = ctx.policy.history_budget_tokens
        history = calls.history
        counts, get = tally.counts, tally.counts.get
        self._sums(counts, calls)
        if calls.n >= 3:
            # a constant history has slope 0.0 exactly: the fit is skipped, not changed
            growth = slope(range(calls.n), history) if min(history) != max(history) else 0.0
            counts["multi_turn_tasks"] = get("multi_turn_tasks", 0) + 1
            counts["growth_tokens_per_turn_sum"] = get("growth_tokens_per_turn_sum", 0) + growth
            if growth >= ctx.policy.history_min_growth_per_turn:
                tally.add("growing_tasks")
                # summed here and added once: the same sum, in the same order, as per call
                tokens, usd = 0, Decimal()
                for rate, tokens_of_call in zip(calls.rates(), history, strict=True):
                    excess = max(0, tokens_of_call - budget)
                    tokens += excess
                    usd += rate * excess
                tally.waste(tokens, usd)

    def judge(self, buckets: Sequence[tuple[datetime, Tally]], ctx: JudgeContext) -> Verdict | None:
        t = self.total(buckets)
        calls, tasks = t.get("calls"), t.get("multi_turn_tasks")
        growing_share = flagged_share(t, ctx, tasks, t.get("growing_tasks"))
        if growing_share is None:
            return None
        cache_share = t.get("cached_input_tokens") / max(1.0, t.get("input_tokens"))
        if cache_share >= ctx.policy.history_max_cache_share:
            return None
        evidence: dict[str, float | int] = {
            "calls": int(calls),
            "multi_turn_tasks": int(tasks),
            "growing_task_share": round(growing_share, 3),
            "history_growth_tokens_per_turn": round(t.get("growth_tokens_per_turn_sum") / tasks),
            "history_tokens_per_call": round(t.get("history_tokens") / calls),
            "cached_input_share": round(cache_share, 3),
            "history_budget_tokens": ctx.policy.history_budget_tokens,
        }
        share = growing_share * (1 - cache_share)
        return self.verdict(t, ctx, evidence, sample=tasks, share=share)
