"""Workflow: retries without backoff or without a bound, and the tokens they burn.

A retry chain is the calls of one agent for one ``step`` of a task with
``attempt`` > 1 among them, ordered by attempt. The gap before a retry is the
time from the end of the previous attempt (``ts`` + ``latency_ms``) to the
retry's ``ts``. A chain backs off when its first gap is at least
``retry_min_backoff`` and each later gap is at least ``retry_backoff_factor``
times the one before; it is bounded when it makes at most the workflow's
``max_retries`` (cost profile) or ``retry_bound`` retries.

Waste model: an immediate retry meets the same transient condition, and a
retry after a growing backoff usually does not, so in a chain without backoff
every *failed* retry is waste (the one that finally succeeds is not); in a
chain with backoff, the failed retries beyond the bound are waste (a bound
would have stopped them). Each is priced whole (input and output).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import pairwise

from tokengov.core.calls import Call
from tokengov.streams.debt.columns import Columns
from tokengov.streams.debt.detectors.base import (
    AgentDetector,
    JudgeContext,
    TaskContext,
    Verdict,
)
from tokengov.streams.debt.tally import Tally

__all__ = ["RetryWithoutBackoff", "backs_off"]


def _gaps(chain: Sequence[Call]) -> list[float]:
    gaps: list[float] = []
    for before, after in pairwise(chain):
        end = before.ts + timedelta(milliseconds=before.latency_ms or 0)
        gaps.append((after.ts - end).total_seconds())
    return gaps


def backs_off(chain: Sequence[Call], min_backoff: timedelta, factor: float) -> bool:
    """True when the gaps between attempts start at ``min_backoff`` and keep growing."""
    gaps = _gaps(chain)
    if not gaps or gaps[0] < min_backoff.total_seconds():
        return False
    return all(later >= factor * earlier for earlier, later in pairwise(gaps))


class RetryWithoutBackoff(AgentDetector):
    name = "retry_without_backoff"
    area = "workflow"
    better_pattern = (
        "Retry with exponential backoff and jitter, a bound on attempts, and a fallback "
        "once the bound is hit, instead of retrying immediately and without limit."
    )

    def tally_agents(self, tally: Tally, calls: Columns, ctx: TaskContext) -> None:
        if max(calls.attempt) >= 2:  # a task that did not retry adds nothing
            # each task that retried read in place (its calls ``lo`` to ``hi``), not sliced
            for lo, hi in calls.spans_where(calls.attempt, 2):
                self._chains(tally, calls, lo, hi, ctx)

    def tally_agent(self, tally: Tally, calls: Columns, ctx: TaskContext) -> None:
        if max(calls.attempt) >= 2:  # no retry: no chain
            self._chains(tally, calls, 0, calls.n, ctx)

    def _chains(self, tally: Tally, calls: Columns, lo: int, hi: int, ctx: TaskContext) -> None:
        """Add the chains of one agent's calls of one task: ``calls``' from ``lo`` to ``hi``."""
        bound = (ctx.profile.max_retries if ctx.profile else None) or ctx.policy.retry_bound
        rows, attempt = calls.calls, calls.attempt
        # the steps with a retry, each with its calls, in the order of their first call
        retried = {rows[i].step for i in range(lo, hi) if attempt[i] >= 2}
        steps: dict[int, list[int]] = {}
        for i in range(lo, hi):
            step = rows[i].step
            if step in retried:
                steps.setdefault(step, []).append(i)
        # summed here and added once: the same sums, in the same order, as per chain
        chains = retry_calls = retry_tokens = over_bound = without_backoff = wasteful = 0
        tokens, usd = 0, Decimal()
        for indexes in steps.values():
            chain = [rows[i] for i in indexes]
            order = sorted(range(len(chain)), key=lambda j: (chain[j].attempt, chain[j].ts))
            ordered = [(indexes[j], chain[j]) for j in order]
            retries = [(i, c) for i, c in ordered if c.attempt > 1]
            chains += 1
            retry_calls += len(retries)
            retry_tokens += sum(c.tokens_total for _, c in retries)
            over_bound += int(len(retries) > bound)
            if not backs_off(
                [c for _, c in ordered],
                ctx.policy.retry_min_backoff,
                ctx.policy.retry_backoff_factor,
            ):
                without_backoff += 1
                wasted = [(i, c) for i, c in retries if c.status != "ok"]
            else:
                wasted = [(i, c) for i, c in retries if c.attempt > 1 + bound and c.status != "ok"]
            if wasted:
                wasteful += 1
            for i, call in wasted:
                tokens += call.tokens_total
                usd += calls.cost_usd(i)
        if not chains:
            return
        tally.add("chains", chains)
        tally.add("retry_calls", retry_calls)
        tally.add("retry_tokens", retry_tokens)
        tally.add("chains_over_bound", over_bound)
        if without_backoff:
            tally.add("chains_without_backoff", without_backoff)
        if wasteful:
            tally.add("wasteful_chains", wasteful)
            tally.waste(tokens, usd)

    def judge(self, buckets: Sequence[tuple[datetime, Tally]], ctx: JudgeContext) -> Verdict | None:
        t = self.total(buckets)
        chains, wasteful = t.get("chains"), t.get("wasteful_chains")
        if t.get("calls") < ctx.policy.min_calls or wasteful < 2 or t.waste_tokens <= 0:
            return None
        evidence: dict[str, float | int] = {
            "calls": int(t.get("calls")),
            "retry_chains": int(chains),
            "chains_without_backoff": int(t.get("chains_without_backoff")),
            "chains_over_bound": int(t.get("chains_over_bound")),
            "retries_per_chain": round(t.get("retry_calls") / chains, 2),
            "retry_tokens": int(t.get("retry_tokens")),
            "wasted_retry_tokens": t.waste_tokens,
        }
        return self.verdict(t, ctx, evidence, sample=chains, share=wasteful / chains, half_at=3)
