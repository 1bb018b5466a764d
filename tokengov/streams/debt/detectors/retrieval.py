"""Retrieval: oversized retrieval, or the same retrieval repeated within a task.

A call repeats a retrieval when its retrieved tokens (at least
``retrieval_min_repeat_tokens``) equal those of an earlier call of the same
agent in the same task: the same chunks fetched again. Waste model: a repeated
retrieval could have reused the first one (a cache, or keeping it in the
task's context once), so all its retrieved tokens are waste; any other
retrieval needs at most ``retrieval_budget_tokens`` after reranking, so the
tokens beyond that are waste. Priced at the call's input price. Fires when at
least half of the retrieving calls are oversized or repeated.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from tokengov.streams.debt.columns import Columns
from tokengov.streams.debt.detectors.base import (
    AgentDetector,
    JudgeContext,
    TaskContext,
    Verdict,
    flagged_share,
)
from tokengov.streams.debt.tally import Tally

__all__ = ["RetrievalWaste"]


class RetrievalWaste(AgentDetector):
    name = "retrieval_waste"
    area = "retrieval"
    better_pattern = (
        "Rerank and cap retrieved context to what the call needs, and cache or reuse a "
        "task's retrievals instead of fetching the same chunks again."
    )

    def tally_agents(self, tally: Tally, calls: Columns, ctx: TaskContext) -> None:
        if max(calls.retrieved) > 0:  # a task that retrieved nothing adds nothing
            for part in calls.parts_where(calls.retrieved, 1):
                self.tally_agent(tally, part, ctx)

    def tally_agent(self, tally: Tally, calls: Columns, ctx: TaskContext) -> None:
        retrieved_tokens = calls.retrieved
        if max(retrieved_tokens) <= 0:
            return
        budget = ctx.policy.retrieval_budget_tokens
        min_repeat = ctx.policy.retrieval_min_repeat_tokens
        seen: set[int] = set()
        retrievals = total = repeated = oversized = tokens = 0
        usd = Decimal()  # summed here and added once: the same sums, in the same order
        for i, retrieved in enumerate(retrieved_tokens):
            if retrieved <= 0:
                continue
            retrievals += 1
            total += retrieved
            if retrieved >= min_repeat and retrieved in seen:
                repeated += 1
                tokens += retrieved
                usd += calls.input_usd(i, retrieved)
            elif retrieved > budget:
                oversized += 1
                tokens += retrieved - budget
                usd += calls.input_usd(i, retrieved - budget)
            seen.add(retrieved)
        tally.add("retrieval_calls", retrievals)
        tally.add("retrieved_tokens", total)
        if repeated:
            tally.add("repeated_retrievals", repeated)
        if oversized:
            tally.add("oversized_retrievals", oversized)
        if repeated or oversized:
            tally.waste(tokens, usd)

    def judge(self, buckets: Sequence[tuple[datetime, Tally]], ctx: JudgeContext) -> Verdict | None:
        t = self.total(buckets)
        retrievals = t.get("retrieval_calls")
        flagged = t.get("repeated_retrievals") + t.get("oversized_retrievals")
        share = flagged_share(t, ctx, retrievals, flagged)
        if share is None:
            return None
        evidence: dict[str, float | int] = {
            "retrieval_calls": int(retrievals),
            "retrieved_tokens_per_call": round(t.get("retrieved_tokens") / retrievals),
            "oversized_retrievals": int(t.get("oversized_retrievals")),
            "repeated_retrievals": int(t.get("repeated_retrievals")),
            "retrieval_budget_tokens": ctx.policy.retrieval_budget_tokens,
        }
        return self.verdict(t, ctx, evidence, sample=retrievals, share=share)
