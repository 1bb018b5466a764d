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

from streams.debt.calls import Call
from streams.debt.detectors.base import (
    Detector,
    JudgeContext,
    TaskContext,
    Verdict,
    by_agent,
    confidence,
)
from streams.debt.tally import Tally

__all__ = ["ToolResponseBloat"]


class ToolResponseBloat(Detector):
    name = "tool_response_bloat"
    area = "tool_usage"
    better_pattern = (
        "Have tools return only the fields the agent uses (filter, paginate or summarize "
        "payloads) instead of whole responses."
    )

    def tally_task(self, calls: Sequence[Call], ctx: TaskContext) -> dict[str | None, Tally]:
        out: dict[str | None, Tally] = {}
        per_output = ctx.policy.tool_response_tokens_per_output
        floor = ctx.policy.tool_response_min_tokens
        for agent, agent_calls in by_agent(calls).items():
            tally = Tally()
            tally.add("calls", len(agent_calls))
            for call in agent_calls:
                e = call.event
                responses = e.components.tool_responses
                if responses <= 0:
                    continue
                tally.add("response_calls")
                tally.add("tool_responses_tokens", responses)
                tally.add("output_tokens", e.tokens.output)
                allowance = max(floor, per_output * e.tokens.output)
                if responses > allowance:
                    tally.add("oversized_responses")
                    tally.waste(responses - allowance, call.input_usd(responses - allowance))
            out[agent] = tally
        return out

    def judge(self, buckets: Sequence[tuple[datetime, Tally]], ctx: JudgeContext) -> Verdict | None:
        t = self.total(buckets)
        response_calls = t.get("response_calls")
        if t.get("calls") < ctx.policy.min_calls or response_calls <= 0 or t.waste_tokens <= 0:
            return None
        share = t.get("oversized_responses") / response_calls
        if share < 0.5:
            return None
        tokens_day, usd_day = self.rates(t, ctx)
        return Verdict(
            evidence={
                "response_calls": int(response_calls),
                "tool_responses_tokens_per_call": round(
                    t.get("tool_responses_tokens") / response_calls
                ),
                "output_tokens_per_call": round(t.get("output_tokens") / response_calls),
                "response_tokens_per_output_token": round(
                    t.get("tool_responses_tokens") / max(1.0, t.get("output_tokens")), 1
                ),
                "oversized_share": round(share, 3),
            },
            waste_tokens_per_day=tokens_day,
            waste_usd_per_day=usd_day,
            confidence=confidence(response_calls, share),
        )
