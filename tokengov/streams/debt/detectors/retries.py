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
from itertools import pairwise

from tokengov.streams.debt.detectors.base import (
    AgentDetector,
    JudgeContext,
    Priced,
    TaskContext,
    Verdict,
)
from tokengov.streams.debt.tally import Tally

__all__ = ["RetryWithoutBackoff", "backs_off"]


def _gaps(chain: Sequence[Priced]) -> list[float]:
    gaps: list[float] = []
    for (before, _), (after, _) in pairwise(chain):
        end = before.ts + timedelta(milliseconds=before.latency_ms or 0)
        gaps.append((after.ts - end).total_seconds())
    return gaps


def backs_off(chain: Sequence[Priced], min_backoff: timedelta, factor: float) -> bool:
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

    def tally_agent(self, tally: Tally, calls: Sequence[Priced], ctx: TaskContext) -> None:
        bound = (ctx.profile.max_retries if ctx.profile else None) or ctx.policy.retry_bound
        steps: dict[int, list[Priced]] = {}
        for priced in calls:
            steps.setdefault(priced[0].step, []).append(priced)
        for chain in steps.values():
            if max(c.attempt for c, _ in chain) < 2:
                continue
            chain.sort(key=lambda cp: (cp[0].attempt, cp[0].ts))
            retries = [(c, p) for c, p in chain if c.attempt > 1]
            tally.add("chains")
            tally.add("retry_calls", len(retries))
            tally.add("retry_tokens", sum(c.tokens_total for c, _ in retries))
            tally.add("chains_over_bound", int(len(retries) > bound))
            if not backs_off(chain, ctx.policy.retry_min_backoff, ctx.policy.retry_backoff_factor):
                tally.add("chains_without_backoff")
                wasted = [(c, p) for c, p in retries if c.status != "ok"]
            else:
                wasted = [(c, p) for c, p in retries if c.attempt > 1 + bound and c.status != "ok"]
            if wasted:
                tally.add("wasteful_chains")
            for call, price in wasted:
                tally.waste(call.tokens_total, price.cost_usd)

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
