"""The detector interface: tally each task, judge the tallies of a horizon.

A detector turns one task's calls (by column: :class:`~tokengov.streams.debt.columns.TaskCalls`)
into additive :class:`Tally` values (per agent, or per workflow), and judges the sum of the
tallies over its horizon. Tallies add up, so the engine keeps only per-bucket sums, never raw
events of closed tasks; a detector adds into the tally the engine hands it (the task's bucket
itself when the task closes), so what it adds must be the task's own sums, each added once:
the same numbers, in the same order, as a fresh tally merged into the bucket. The engine hands
a detector the tasks that close together and share its buckets at once
(:meth:`Detector.tally_batch`): by default each task in turn; a detector may add at once the
sums of the tasks that show nothing of its pattern, where that gives the same numbers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import ClassVar, Final

from tokengov.core.policy import CostProfile, DebtPolicy
from tokengov.streams.debt.columns import Columns, TaskBatch, TaskCalls
from tokengov.streams.debt.findings import Area
from tokengov.streams.debt.tally import Tally, sum_tallies

__all__ = [
    "DAY",
    "MIN_SHARE",
    "AgentDetector",
    "Detector",
    "JudgeContext",
    "TallyFor",
    "TaskContext",
    "Verdict",
    "confidence",
    "flagged_share",
    "per_day",
]

DAY: Final = timedelta(days=1)
#: The tally of an agent (None: the whole workflow) that a task's sums are added into.
TallyFor = Callable[[str | None], Tally]
#: The share of the units that could show a pattern that must show it before it is reported.
MIN_SHARE: Final = 0.5


@dataclass(frozen=True, slots=True)
class TaskContext:
    policy: DebtPolicy
    profile: CostProfile | None = None


@dataclass(frozen=True, slots=True)
class JudgeContext:
    policy: DebtPolicy
    span: timedelta  # the event time the horizon's tallies cover, for per-day rates
    profile: CostProfile | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    evidence: dict[str, float | int]
    waste_tokens_per_day: int
    waste_usd_per_day: Decimal
    confidence: float
    extra: dict[str, str] = field(default_factory=dict)


def per_day(value: float | int | Decimal, span: timedelta) -> Decimal:
    """A quantity observed over ``span``, as a rate per day."""
    seconds = Decimal(str(span.total_seconds()))
    return Decimal(str(value)) * Decimal(86400) / seconds


def confidence(sample: float, share: float, *, half_at: float = 10) -> float:
    """``sample / (sample + half_at)`` (more evidence, more confidence) times the share
    of units that show the pattern, clamped to 0..1 and rounded to 2 places."""
    if sample <= 0:
        return 0.0
    value = sample / (sample + half_at) * max(0.0, min(1.0, share))
    return round(max(0.0, min(1.0, value)), 2)


def flagged_share(tally: Tally, ctx: JudgeContext, units: float, flagged: float) -> float | None:
    """``flagged / units``: the share of the units (calls or tasks that could show a
    pattern) that show it. None when the window has fewer than ``min_calls`` calls, no
    units or no waste, or when the share is below :data:`MIN_SHARE`."""
    if tally.get("calls") < ctx.policy.min_calls or units <= 0 or tally.waste_tokens <= 0:
        return None
    share = flagged / units
    return share if share >= MIN_SHARE else None


class Detector(ABC):
    """One wasteful pattern. Subclasses set the class attributes and the two methods."""

    name: ClassVar[str]
    area: ClassVar[Area]
    better_pattern: ClassVar[str]
    per_agent: ClassVar[bool] = True
    bucket: ClassVar[timedelta] = timedelta(minutes=1)

    def retention(self, policy: DebtPolicy) -> timedelta:
        """How far back (event time) the tallies this detector judges reach."""
        return policy.horizon

    @abstractmethod
    def tally_task(self, task: TaskCalls, ctx: TaskContext, tally_for: TallyFor) -> None:
        """Add one task's calls to ``tally_for(agent)`` (``tally_for(None)`` when the detector
        judges whole workflows)."""

    def tally_batch(self, batch: TaskBatch, ctx: TaskContext, tally_for: TallyFor) -> None:
        """Add several tasks whose sums go into the same buckets, in their order: what
        :meth:`tally_task` adds for each in turn (a detector may add the sums of tasks that
        show nothing at once, where that gives the same numbers, floats bit for bit)."""
        for index in range(len(batch.tasks)):
            self.tally_task(batch.task(index), ctx, tally_for)

    @abstractmethod
    def judge(self, buckets: Sequence[tuple[datetime, Tally]], ctx: JudgeContext) -> Verdict | None:
        """The horizon's tallies (by bucket start, oldest first) → a verdict, or None when
        the pattern is absent or the evidence too thin."""

    @staticmethod
    def total(buckets: Sequence[tuple[datetime, Tally]]) -> Tally:
        return sum_tallies(t for _, t in buckets)

    def rates(self, tally: Tally, ctx: JudgeContext) -> tuple[int, Decimal]:
        """The window's waste as (tokens per day, USD per day)."""
        tokens = int(per_day(tally.waste_tokens, ctx.span))
        usd = per_day(tally.waste_usd, ctx.span).quantize(Decimal("0.000001"))
        return tokens, usd

    def verdict(
        self,
        tally: Tally,
        ctx: JudgeContext,
        evidence: dict[str, float | int],
        *,
        sample: float,
        share: float,
        half_at: float = 10,
    ) -> Verdict:
        """The verdict on a window whose waste is ``tally``'s, at the window's per-day
        :meth:`rates`, with :func:`confidence` of ``sample`` and ``share``."""
        tokens_day, usd_day = self.rates(tally, ctx)
        return Verdict(
            evidence=evidence,
            waste_tokens_per_day=tokens_day,
            waste_usd_per_day=usd_day,
            confidence=confidence(sample, share, half_at=half_at),
        )


def _per_agent(
    agents: dict[str, Columns],
    ctx: TaskContext,
    tally_for: TallyFor,
    add: Callable[[Tally, Columns, TaskContext], None],
) -> None:
    """Each agent's ``calls`` counted into its tally, then ``add`` the rest of its columns."""
    for agent, columns in agents.items():
        tally = tally_for(agent)
        counts = tally.counts
        counts["calls"] = counts.get("calls", 0) + columns.n
        add(tally, columns, ctx)


class AgentDetector(Detector):
    """A detector that tallies each agent of a task on its own. Every agent's tally
    gets its ``calls``; :meth:`tally_agent` adds the rest."""

    def tally_task(self, task: TaskCalls, ctx: TaskContext, tally_for: TallyFor) -> None:
        _per_agent(task.agents, ctx, tally_for, self.tally_agent)

    def tally_batch(self, batch: TaskBatch, ctx: TaskContext, tally_for: TallyFor) -> None:
        _per_agent(batch.agents, ctx, tally_for, self.tally_agents)

    def tally_agents(self, tally: Tally, calls: Columns, ctx: TaskContext) -> None:
        """Add one agent's calls of several tasks (:meth:`Columns.parts`, each in event-time
        order) to ``tally``: :meth:`tally_agent` of each part in turn, unless a detector
        knows that the parts' sums added at once are the same."""
        for part in calls.parts():
            self.tally_agent(tally, part, ctx)

    @abstractmethod
    def tally_agent(self, tally: Tally, calls: Columns, ctx: TaskContext) -> None:
        """Add one agent's calls of one task (in event-time order) to ``tally``."""
