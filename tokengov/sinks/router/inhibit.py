"""Inhibition, with Alertmanager's semantics (``inhibit/inhibit.go``).

A rule mutes a *target* alert while some *firing* source alert matches the
rule's source matchers and has the same value as the target for every label in
``equal`` (a label absent on both sides counts as equal). An alert never
inhibits itself.

Built-in rules (always on) express the budget escalation: once a budget is
breached (its 100% alert fires) its 50%/80% and forecast alerts are noise, and
so are the per-task alerts (runaway, retry_storm, loop) of that budget's scope:
the team for a team budget, the workflow for a workflow budget.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from tokengov.core.matchers import Matcher, matches_all
from tokengov.core.policy import InhibitRule
from tokengov.sinks.router.labels import TASK_KINDS

__all__ = ["BUILTIN_RULES", "Inhibition", "Inhibitor", "Rule", "rules_from_policy"]

_TASKS = "|".join(sorted(TASK_KINDS))
_BUDGET_BREACHED = (
    Matcher.equal("kind", "budget_threshold"),
    Matcher.equal("budget_breached", "true"),
)


@dataclass(frozen=True)
class Rule:
    name: str
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]

    def describe(self) -> str:
        src = ", ".join(str(m) for m in self.source)
        tgt = ", ".join(str(m) for m in self.target)
        eq = f" with equal {', '.join(self.equal)}" if self.equal else ""
        return f"{self.name}: a firing {{{src}}} mutes {{{tgt}}}{eq}"


def _scope_breached_mutes_task_alerts(scope: str) -> Rule:
    """A breached budget of ``scope`` (team or workflow) mutes that scope's per-task alerts."""
    return Rule(
        f"{scope}-budget-breached-mutes-task-alerts",
        (*_BUDGET_BREACHED, Matcher.equal("budget_scope", scope)),
        (Matcher.regex("kind", _TASKS),),
        (scope,),
    )


BUILTIN_RULES: tuple[Rule, ...] = (
    Rule(
        "budget-breached-mutes-lower-thresholds",
        _BUDGET_BREACHED,
        (
            Matcher.regex("kind", "budget_threshold|budget_forecast"),
            Matcher("budget_breached", "!=", "true"),
        ),
        ("budget",),
    ),
    _scope_breached_mutes_task_alerts("team"),
    _scope_breached_mutes_task_alerts("workflow"),
)


def rules_from_policy(rules: Iterable[InhibitRule]) -> list[Rule]:
    return [
        Rule(
            f"inhibit_rules[{i}]",
            rule.source,
            rule.target,
            tuple(rule.equal),
        )
        for i, rule in enumerate(rules)
    ]


@dataclass(frozen=True)
class Inhibition:
    """Why an alert is muted: the rule and the source alert."""

    rule: Rule
    source_fingerprint: str


class Inhibitor:
    """Holds the firing candidates for every rule's source side."""

    def __init__(self, rules: Iterable[Rule] = BUILTIN_RULES) -> None:
        self.rules = tuple(rules)
        self._sources: list[dict[str, tuple[dict[str, str], datetime | None]]] = [
            {} for _ in self.rules
        ]

    def observe(
        self,
        fingerprint: str,
        labels: Mapping[str, str],
        *,
        firing: bool,
        ends_at: datetime | None = None,
    ) -> None:
        """Record an alert's latest state (call for every alert, firing or resolved).

        A firing alert with ``ends_at`` stops inhibiting once that time has passed."""
        for rule, sources in zip(self.rules, self._sources, strict=True):
            if firing and matches_all(rule.source, labels):
                sources[fingerprint] = (dict(labels), ends_at)
            else:
                sources.pop(fingerprint, None)

    def forget(self, fingerprint: str) -> None:
        for sources in self._sources:
            sources.pop(fingerprint, None)

    def muted_by(
        self, fingerprint: str, labels: Mapping[str, str], now: datetime
    ) -> Inhibition | None:
        for rule, sources in zip(self.rules, self._sources, strict=True):
            if not matches_all(rule.target, labels):
                continue
            for source_fp, (source_labels, ends_at) in sources.items():
                if source_fp == fingerprint or (ends_at is not None and ends_at <= now):
                    continue
                if all(source_labels.get(e, "") == labels.get(e, "") for e in rule.equal):
                    return Inhibition(rule, source_fp)
        return None

    def rules_targeting(self, labels: Mapping[str, str]) -> list[Rule]:
        """The rules that could mute an alert with these labels (for test-route)."""
        return [r for r in self.rules if matches_all(r.target, labels)]
