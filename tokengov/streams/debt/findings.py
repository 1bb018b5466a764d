"""A token-debt finding: one wasteful engineering pattern, its evidence, what it costs and
what to do instead. Published as JSON on ``tokengov.findings`` (the model's JSON is the
message) and stored in the ClickHouse ``findings`` table (``evidence`` as a JSON string).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Final, Literal, get_args

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from tokengov.core.contracts import Alert

__all__ = [
    "AREAS",
    "FINDING_SCHEMA_VERSION",
    "Area",
    "Finding",
    "finding_alert",
    "finding_fingerprint",
    "make_finding_id",
]

FINDING_SCHEMA_VERSION: Final = 1

Area = Literal[
    "agent_design",
    "context_management",
    "orchestration",
    "memory",
    "retrieval",
    "tool_usage",
    "workflow",
    "system_prompt",
]
AREAS: Final[tuple[Area, ...]] = get_args(Area)

_NAMESPACE: Final = uuid.UUID("6b1d3c52-5b0e-4c59-9a57-2f0d3f7a8e11")


class Finding(BaseModel):
    """One detector's verdict on one workflow (and agent) over its horizon."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    finding_id: str
    ts: AwareDatetime = Field(description="When the finding was made (the engine's clock).")
    area: Area
    team: str
    workflow: str
    agent: str | None = None
    evidence: dict[str, float | int] = Field(
        description="The numbers the verdict rests on, units in the names."
    )
    estimated_waste_tokens_per_day: int = Field(ge=0)
    estimated_waste_usd_per_day: Decimal = Field(ge=0, allow_inf_nan=False)
    confidence: float = Field(ge=0.0, le=1.0)
    better_pattern: str
    detector: str
    schema_version: Literal[1] = FINDING_SCHEMA_VERSION

    @property
    def key(self) -> tuple[str, str, str | None, str]:
        return (self.team, self.workflow, self.agent, self.detector)


def make_finding_id(
    detector: str, team: str, workflow: str, agent: str | None, window_end: datetime
) -> str:
    """Deterministic: the same events judged again give the same id (replays dedupe)."""
    name = f"{detector}|{team}|{workflow}|{agent or ''}|{window_end.isoformat()}"
    return str(uuid.uuid5(_NAMESPACE, name))


def finding_fingerprint(team: str, workflow: str, detector: str, agent: str | None) -> str:
    return f"debt_finding|{team}|{workflow}|{detector}|{agent or ''}"


def finding_alert(
    finding: Finding,
    *,
    severity: Literal["info", "warning", "critical"],
    starts_at: datetime,
    status: Literal["firing", "resolved"] = "firing",
    ends_at: datetime | None = None,
) -> Alert:
    """The ``debt_finding`` alert to the owning team for ``finding``."""
    where = f"{finding.workflow}/{finding.agent}" if finding.agent else finding.workflow
    if status == "firing":
        summary = (
            f"token debt ({finding.area.replace('_', ' ')}) in {where}: about "
            f"{finding.estimated_waste_tokens_per_day:,} tokens "
            f"(${finding.estimated_waste_usd_per_day:.2f}) wasted per day. "
            f"{finding.better_pattern}"
        )
    else:
        summary = f"token debt ({finding.area.replace('_', ' ')}) in {where} no longer detected"
    labels = {"area": finding.area, "detector": finding.detector}
    if finding.agent:
        labels["agent"] = finding.agent
    return Alert(
        fingerprint=finding_fingerprint(
            finding.team, finding.workflow, finding.detector, finding.agent
        ),
        kind="debt_finding",
        severity=severity,
        status=status,
        team=finding.team,
        workflow=finding.workflow,
        labels=labels,
        summary=summary,
        evidence={
            "finding_id": finding.finding_id,
            "estimated_waste_tokens_per_day": finding.estimated_waste_tokens_per_day,
            "estimated_waste_usd_per_day": str(finding.estimated_waste_usd_per_day),
            "confidence": finding.confidence,
            **finding.evidence,
        },
        starts_at=starts_at,
        ends_at=ends_at,
    )
