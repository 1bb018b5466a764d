"""Memory: raw transcripts replayed into every call.

A call's memory is large when it is at least ``memory_budget_tokens``; it is
repeated when a task carries large memory on two or more calls. Waste model:
distilled memory (the few facts this call needs, retrieved by relevance) fits
in ``memory_budget_tokens``; the memory tokens beyond that on every call of a
task that replays large memory are waste, priced at the call's input price.
Fires when at least half of the calls that carry memory carry large memory.
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

__all__ = ["MemoryReplay"]


class MemoryReplay(AgentDetector):
    name = "memory_replay"
    area = "memory"
    better_pattern = (
        "Store distilled facts and retrieve only the few relevant to this call instead of "
        "replaying raw transcripts into every call."
    )

    def tally_agents(self, tally: Tally, calls: Columns, ctx: TaskContext) -> None:
        if max(calls.memory) <= 0:  # no task carries memory: the same zeros, added once
            self.tally_agent(tally, calls, ctx)
        else:
            super().tally_agents(tally, calls, ctx)

    def tally_agent(self, tally: Tally, calls: Columns, ctx: TaskContext) -> None:
        budget = ctx.policy.memory_budget_tokens
        memory = calls.memory
        if max(memory) <= 0:
            counts, get = tally.counts, tally.counts.get
            counts["memory_calls"] = get("memory_calls", 0)
            counts["memory_tokens"] = get("memory_tokens", 0)
            counts["large_memory_calls"] = get("large_memory_calls", 0)
            return
        with_memory = [m for m in memory if m > 0]
        large = [i for i, m in enumerate(memory) if m > 0 and m >= budget]
        tally.add("memory_calls", len(with_memory))
        tally.add("memory_tokens", sum(with_memory))
        tally.add("large_memory_calls", len(large))
        if len(large) >= 2:
            tally.add("replaying_tasks")
            # summed here and added once: the same sum, in the same order, as per call
            tokens, usd = 0, Decimal()
            for i in large:
                excess = memory[i] - budget
                tokens += excess
                usd += calls.input_usd(i, excess)
            tally.waste(tokens, usd)

    def judge(self, buckets: Sequence[tuple[datetime, Tally]], ctx: JudgeContext) -> Verdict | None:
        t = self.total(buckets)
        memory_calls = t.get("memory_calls")
        large_share = flagged_share(t, ctx, memory_calls, t.get("large_memory_calls"))
        if large_share is None:
            return None
        evidence: dict[str, float | int] = {
            "calls": int(t.get("calls")),
            "memory_calls": int(memory_calls),
            "memory_tokens_per_call": round(t.get("memory_tokens") / memory_calls),
            "large_memory_share": round(large_share, 3),
            "replaying_tasks": int(t.get("replaying_tasks")),
            "memory_budget_tokens": ctx.policy.memory_budget_tokens,
        }
        return self.verdict(t, ctx, evidence, sample=memory_calls, share=large_share)
