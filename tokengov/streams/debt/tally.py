"""What a detector keeps per task and per time bucket: numbers that add up."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

__all__ = ["Buckets", "Key", "Tally", "WorkflowTallies", "sum_tallies"]


@dataclass(slots=True)
class Tally:
    """Additive counters (``counts``, units in the names), the tokens and USD judged
    wasted, and a set of names (e.g. the tools an agent called)."""

    counts: dict[str, float] = field(default_factory=dict)
    waste_tokens: int = 0
    waste_usd: Decimal = field(default_factory=Decimal)
    names: set[str] = field(default_factory=set)

    def add(self, key: str, value: float = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + value

    def get(self, key: str) -> float:
        return self.counts.get(key, 0)

    def waste(self, tokens: int, usd: Decimal) -> None:
        self.waste_tokens += tokens
        self.waste_usd += usd

    def merge(self, other: Tally) -> None:
        for key, value in other.counts.items():
            self.counts[key] = self.counts.get(key, 0) + value
        self.waste_tokens += other.waste_tokens
        self.waste_usd += other.waste_usd
        self.names |= other.names


def sum_tallies(tallies: Iterable[Tally]) -> Tally:
    total = Tally()
    for tally in tallies:
        total.merge(tally)
    return total


Key = tuple[str, str, str | None, str]  # team, workflow, agent, detector
Buckets = dict[Key, dict[datetime, Tally]]  # by key, then by bucket start


@dataclass(slots=True)
class WorkflowTallies:
    """One partition's share of one workflow: what stage 1 publishes and stage 2 sums."""

    workflow: str
    watermark: datetime  # the partition's latest call of the workflow (event time)
    first_seen: datetime  # the partition's first call of the workflow
    calls: int  # calls of the workflow the partition observed
    buckets: Buckets  # closed tasks' tallies plus the open tasks' (provisional)
