"""Orchestration: handoffs that transfer the sender's whole context.

For each call made after a handoff (``parent_agent`` set, ``handoff`` > 0), the
sender's context is the input of the parent agent's latest call in the same
task before it. A handoff of at least ``handoff_min_context_share`` of that
context is a full-context transfer. Waste model: a small structured handoff
message (the task, decisions so far, open questions) needs about
``handoff_budget_tokens``; the handoff tokens beyond that on every call of a
full-context transfer are waste, priced at the receiving call's input price.
Fires when at least half of the handoff calls are full-context transfers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from tokengov.streams.debt.columns import Columns, TaskBatch, TaskCalls
from tokengov.streams.debt.detectors.base import (
    MIN_SHARE,
    Detector,
    JudgeContext,
    TallyFor,
    TaskContext,
    Verdict,
)
from tokengov.streams.debt.tally import Tally

__all__ = ["FullContextHandoff"]


def _calls_only(agents: dict[str, Columns], tally_for: TallyFor) -> None:
    """Calls without a handoff: every agent's tally is its calls."""
    for agent, calls in agents.items():
        counts = tally_for(agent).counts
        counts["calls"] = counts.get("calls", 0) + calls.n


class FullContextHandoff(Detector):
    name = "full_context_handoff"
    area = "orchestration"
    better_pattern = (
        "Hand off a small structured message (goal, decisions, open questions, references) "
        "instead of the sender's whole context."
    )

    def tally_batch(self, batch: TaskBatch, ctx: TaskContext, tally_for: TallyFor) -> None:
        agents = batch.agents
        if any(max(calls.handoff) > 0 for calls in agents.values()):
            super().tally_batch(batch, ctx, tally_for)
            return
        _calls_only(agents, tally_for)  # no handoff in any task

    def tally_task(self, task: TaskCalls, ctx: TaskContext, tally_for: TallyFor) -> None:
        columns = task.all
        if max(columns.handoff) <= 0:  # no handoff
            _calls_only(task.agents, tally_for)
            return
        latest_input: dict[str, int] = {}
        budget = ctx.policy.handoff_budget_tokens
        # each agent's counts and waste summed here and added once (the same sums, in the
        # same order, as one add per call)
        sums: dict[str, list[Any]] = {}
        for i, e in enumerate(columns.calls):
            held = sums.get(e.agent)
            if held is None:
                held = sums[e.agent] = [0, 0, 0, 0, 0, 0, Decimal(), set()]
            held[0] += 1
            sender_context = latest_input.get(e.parent_agent) if e.parent_agent else None
            handoff = columns.handoff[i]
            if handoff > 0 and sender_context:
                held[1] += 1
                held[2] += handoff
                held[3] += sender_context
                if handoff >= ctx.policy.handoff_min_context_share * sender_context:
                    held[4] += 1
                    excess = max(0, handoff - budget)
                    held[5] += excess
                    held[6] += columns.input_usd(i, excess)
                held[7].add(e.parent_agent or "")
            latest_input[e.agent] = e.input
        for agent, (n_calls, handoffs, tokens, context, full, waste, usd, senders) in sums.items():
            tally = tally_for(agent)
            tally.add("calls", n_calls)
            if handoffs:
                tally.add("handoff_calls", handoffs)
                tally.add("handoff_tokens", tokens)
                tally.add("sender_context_tokens", context)
                tally.names |= senders
            if full:
                tally.add("full_context_handoffs", full)
                tally.waste(waste, usd)

    def judge(self, buckets: Sequence[tuple[datetime, Tally]], ctx: JudgeContext) -> Verdict | None:
        t = self.total(buckets)
        handoffs = t.get("handoff_calls")
        if handoffs < ctx.policy.min_calls or t.waste_tokens <= 0:
            return None
        full_share = t.get("full_context_handoffs") / handoffs
        if full_share < MIN_SHARE:
            return None
        evidence: dict[str, float | int] = {
            "handoff_calls": int(handoffs),
            "handoff_tokens_per_call": round(t.get("handoff_tokens") / handoffs),
            "sender_context_tokens_per_call": round(t.get("sender_context_tokens") / handoffs),
            "handoff_share_of_sender_context": round(
                t.get("handoff_tokens") / t.get("sender_context_tokens"), 3
            ),
            "full_context_handoff_share": round(full_share, 3),
            "handoff_budget_tokens": ctx.policy.handoff_budget_tokens,
        }
        return self.verdict(t, ctx, evidence, sample=handoffs, share=full_share)
