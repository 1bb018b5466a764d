"""What the debt report shows, as plain values (built by :mod:`tokengov.app.report.build`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from tokengov.streams.debt.maturity import Maturity

__all__ = ["DaySpend", "FindingRow", "ReportData", "WorkflowUnits"]


@dataclass(frozen=True)
class DaySpend:
    day: date
    cost_usd: Decimal
    tokens: int
    calls: int


@dataclass(frozen=True)
class WorkflowUnits:
    """Unit metrics of one workflow over the period."""

    team: str
    workflow: str
    calls: int
    tokens: int
    cost_usd: Decimal
    retries: int
    errors: int
    outcomes: int
    successes: int
    met_bar: int  # successes at or above the workflow's quality bar

    @property
    def success_rate(self) -> float | None:
        return self.met_bar / self.outcomes if self.outcomes else None

    @property
    def tokens_per_outcome(self) -> float | None:
        """Tokens per successful outcome (met the quality bar): the unit cost."""
        return self.tokens / self.met_bar if self.met_bar else None

    @property
    def cost_per_outcome_usd(self) -> Decimal | None:
        return self.cost_usd / self.met_bar if self.met_bar else None


@dataclass(frozen=True)
class FindingRow:
    """The latest finding of one (team, workflow, agent, detector) in the period."""

    team: str
    workflow: str
    agent: str | None
    detector: str
    area: str
    finding_id: str
    evidence: dict[str, float | int]
    waste_tokens_per_day: int
    waste_usd_per_day: Decimal
    confidence: float
    better_pattern: str
    first_ts: datetime
    last_ts: datetime
    first_waste_tokens_per_day: int
    times: int
    acted_on: bool


@dataclass(frozen=True)
class ReportData:
    generated_at: datetime
    since: date
    team: str | None
    days: list[DaySpend]
    findings: list[FindingRow]
    workflows: list[WorkflowUnits]
    tokens_per_outcome: dict[str, list[tuple[date, float]]]
    maturity: list[Maturity]
    waste_by_area: dict[str, Decimal] = field(default_factory=dict)

    @property
    def total_cost_usd(self) -> Decimal:
        return sum((d.cost_usd for d in self.days), Decimal(0))

    @property
    def total_tokens(self) -> int:
        return sum(d.tokens for d in self.days)

    @property
    def trend_pct(self) -> float | None:
        """Mean daily spend of the later half of the days against the earlier half."""
        if len(self.days) < 2:
            return None
        half = len(self.days) // 2
        early = sum((d.cost_usd for d in self.days[:half]), Decimal(0)) / half
        late = sum((d.cost_usd for d in self.days[half:]), Decimal(0)) / (len(self.days) - half)
        if early == 0:
            return None
        return float((late - early) / early)

    @property
    def open_waste_usd_per_day(self) -> Decimal:
        return sum((f.waste_usd_per_day for f in self.findings if not f.acted_on), Decimal(0))
