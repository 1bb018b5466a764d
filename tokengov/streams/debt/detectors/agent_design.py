"""Agent design: every tool definition loaded on every call.

Waste model: a call needs the definitions of the tools the agent actually
calls, about ``tool_tokens_per_definition`` tokens each. Over the horizon an
agent that called ``k`` distinct tools (at least 1) needs
``k × tool_tokens_per_definition`` tool-definition tokens per call; every
tool-definition token beyond that, on every call, is waste, priced at the
calls' average input price. Fires when tool definitions are at least
``tool_definitions_min_share`` of the input and at least twice the allowance.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from tokengov.streams.debt.columns import Columns
from tokengov.streams.debt.detectors.base import AgentDetector, JudgeContext, TaskContext, Verdict
from tokengov.streams.debt.tally import Tally

__all__ = ["ToolDefinitionBloat"]


class ToolDefinitionBloat(AgentDetector):
    name = "tool_definition_bloat"
    area = "agent_design"
    better_pattern = (
        "Load only the tools each step needs (route or retrieve tool definitions per step) "
        "instead of sending every tool definition on every call."
    )

    def tally_agents(self, tally: Tally, calls: Columns, ctx: TaskContext) -> None:
        if max(calls.tool_definitions) <= 0:
            # no task sends tool definitions: its USD adds 0.0, and the rest are integer sums
            # and a set, the same added at once as task by task
            self.tally_agent(tally, calls, ctx)
        else:
            super().tally_agents(tally, calls, ctx)

    def tally_agent(self, tally: Tally, calls: Columns, ctx: TaskContext) -> None:
        # summed here and added once: the same sums, in the same order, as one add per call
        # (a call without tool definitions adds 0.0 to the USD: skipped)
        definitions = calls.tool_definitions
        definitions_usd = calls.input_usd_float_sum(definitions) if max(definitions) > 0 else 0.0
        counts, get = tally.counts, tally.counts.get
        counts["input_tokens"] = get("input_tokens", 0) + sum(calls.input)
        counts["tool_definitions_tokens"] = get("tool_definitions_tokens", 0) + sum(definitions)
        counts["tool_definitions_usd"] = get("tool_definitions_usd", 0) + definitions_usd
        counts["tool_calls"] = get("tool_calls", 0) + sum(calls.tool_calls)
        tally.names |= calls.tool_names()

    def judge(self, buckets: Sequence[tuple[datetime, Tally]], ctx: JudgeContext) -> Verdict | None:
        t = self.total(buckets)
        calls = t.get("calls")
        definitions = t.get("tool_definitions_tokens")
        if calls < ctx.policy.min_calls or definitions <= 0:
            return None
        tools_called = max(1, len(t.names))
        allowance = tools_called * ctx.policy.tool_tokens_per_definition
        per_call = definitions / calls
        share = definitions / t.get("input_tokens")
        if share < ctx.policy.tool_definitions_min_share or per_call < 2 * allowance:
            return None
        waste_tokens = int(definitions - calls * allowance)
        usd_per_token = Decimal(str(t.get("tool_definitions_usd"))) / Decimal(str(definitions))
        t.waste(waste_tokens, usd_per_token * waste_tokens)
        evidence: dict[str, float | int] = {
            "calls": int(calls),
            "tool_definitions_tokens_per_call": round(per_call),
            "tool_definitions_share_of_input": round(share, 3),
            "distinct_tools_called": len(t.names),
            "tool_calls_per_call": round(t.get("tool_calls") / calls, 2),
            "needed_tool_definitions_tokens_per_call": allowance,
        }
        return self.verdict(t, ctx, evidence, sample=calls, share=1 - allowance / per_call)
