"""Tool usage: whole tool payloads returned to the model.

For a call that reads tool responses, what it produces from them is its
output. Waste model: a trimmed tool response (the fields the agent uses, or a
summary) needs at most ``tool_response_tokens_per_output`` tokens per output
token, and never less than ``tool_response_min_tokens``; the tool-response
tokens beyond that allowance are waste, priced at the call's input price.
Fires when at least half of the calls with tool responses exceed the allowance.
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

__all__ = ["ToolResponseBloat"]


class ToolResponseBloat(AgentDetector):
    name = "tool_response_bloat"
    area = "tool_usage"
    better_pattern = (
        "Have tools return only the fields the agent uses (filter, paginate or summarize "
        "payloads) instead of whole responses."
    )

    def tally_agents(self, tally: Tally, calls: Columns, ctx: TaskContext) -> None:
        if max(calls.tool_responses) > 0:  # a task without tool responses adds nothing
            for part in calls.parts_where(calls.tool_responses, 1):
                self.tally_agent(tally, part, ctx)

    def tally_agent(self, tally: Tally, calls: Columns, ctx: TaskContext) -> None:
        tool_responses = calls.tool_responses
        if max(tool_responses) <= 0:
            return
        per_output = ctx.policy.tool_response_tokens_per_output
        floor = ctx.policy.tool_response_min_tokens
        response_calls = response_tokens = output_tokens = oversized = tokens = 0
        usd = Decimal()  # summed here and added once: the same sums, in the same order
        for i, responses in enumerate(tool_responses):
            if responses <= 0:
                continue
            output = calls.calls[i].output
            response_calls += 1
            response_tokens += responses
            output_tokens += output
            allowance = max(floor, per_output * output)
            if responses > allowance:
                oversized += 1
                tokens += responses - allowance
                usd += calls.input_usd(i, responses - allowance)
        tally.add("response_calls", response_calls)
        tally.add("tool_responses_tokens", response_tokens)
        tally.add("output_tokens", output_tokens)
        if oversized:
            tally.add("oversized_responses", oversized)
            tally.waste(tokens, usd)

    def judge(self, buckets: Sequence[tuple[datetime, Tally]], ctx: JudgeContext) -> Verdict | None:
        t = self.total(buckets)
        response_calls = t.get("response_calls")
        share = flagged_share(t, ctx, response_calls, t.get("oversized_responses"))
        if share is None:
            return None
        evidence: dict[str, float | int] = {
            "response_calls": int(response_calls),
            "tool_responses_tokens_per_call": round(
                t.get("tool_responses_tokens") / response_calls
            ),
            "output_tokens_per_call": round(t.get("output_tokens") / response_calls),
            "response_tokens_per_output_token": round(
                t.get("tool_responses_tokens") / max(1.0, t.get("output_tokens")), 1
            ),
            "oversized_share": round(share, 3),
        }
        return self.verdict(t, ctx, evidence, sample=response_calls, share=share)
