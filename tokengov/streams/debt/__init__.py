"""Token debt: detectors of wasteful engineering patterns, their engine, and maturity."""

from __future__ import annotations

from tokengov.streams.debt.engine import DebtEngine, EngineStats, FlushResult
from tokengov.streams.debt.findings import AREAS, Area, Finding, finding_alert, make_finding_id
from tokengov.streams.debt.maturity import LEVELS, Maturity, MaturityFacts, grade, policy_facts

__all__ = [
    "AREAS",
    "LEVELS",
    "Area",
    "DebtEngine",
    "EngineStats",
    "Finding",
    "FlushResult",
    "Maturity",
    "MaturityFacts",
    "finding_alert",
    "grade",
    "make_finding_id",
    "policy_facts",
]
