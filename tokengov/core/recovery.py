"""What a worker hands the stream processors when their state is gone: the recovery seed.

The embedded broker keeps its topics in memory, so after ``tokengov up`` restarts every
state topic is empty while the ClickHouse store on disk still holds the day's history.
The application layer (``tokengov worker``) reads that history through ``sinks`` and hands
it to ``streams`` in these plain types — the two packages never import each other:

- :class:`SpendRow` — stored spend per UTC day, team and workflow (the rollups' totals),
  from which each budget's current period is rebuilt;
- ``fired`` — fingerprints of alerts already published (within the alert ledger's
  lookback), so that no threshold alerts twice;
- ``decisions`` — the decisions still in force (latest per key, not expired, not lifted
  by a ``proceed``), re-published to the compacted decisions topic.

A seed is read only when the streams' state topics are empty
(:func:`tokengov.streams.recovery.state_gone`), and applied only to an empty state: with replicated
Kafka and intact state topics nothing is seeded, so nothing is counted twice.

The token-debt engine keeps no state topic at all: on every start it is handed the calls
and outcomes of its horizon from the store (``WorkerContext.debt_history``); it counts
each ``event_id`` once, so the same events read again from the topic change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from tokengov.core.contracts import Decision

__all__ = ["RecoverySeed", "SpendRow"]


@dataclass(frozen=True, slots=True)
class SpendRow:
    """Stored spend of one (UTC day, team, workflow): what the budgets count."""

    day: date
    team: str
    workflow: str
    calls: int
    tokens: int  # input + output tokens, as budgets count them
    cost_usd: Decimal


@dataclass(frozen=True)
class RecoverySeed:
    as_of: datetime
    spend: tuple[SpendRow, ...] = ()
    fired: frozenset[str] = frozenset()
    decisions: tuple[Decision, ...] = ()

    def summary(self) -> str:
        cost = sum((row.cost_usd for row in self.spend), Decimal(0))
        return (
            f"{len(self.spend)} spend rows (${cost} this month), {len(self.fired)} alerts "
            f"already published, {len(self.decisions)} decisions in force"
        )
