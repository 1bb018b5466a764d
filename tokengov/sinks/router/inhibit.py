"""Inhibition, with Alertmanager's semantics (``inhibit/inhibit.go``).

A rule mutes a *target* alert while some *firing* source alert matches the
rule's source matchers and has the same value as the target for every label in
``equal`` (a label absent on both sides counts as equal). An alert never
inhibits itself, and two alerts that each match both sides of a rule do not mute
each other: when the target also matches the source side, a source that also
matches the target side does not count (Alertmanager's ``hasEqual(...,
excludeTwoSidedMatch)``). A source stops inhibiting once it is resolved or its
``ends_at`` has passed.

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

__all__ = [
    "BUILTIN_RULES",
    "Inhibition",
    "Inhibitor",
    "Rule",
    "RuleCheck",
    "RuleSources",
    "rules_from_policy",
]

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
            rule.name or f"inhibit_rules[{i}]",
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


@dataclass(frozen=True)
class RuleCheck:
    """A rule whose target side matches an alert, and where it stands (for test-route)."""

    rule: Rule
    #: The alert matches the source side too, so sources that also match the target
    #: side do not count.
    two_sided: bool
    #: The firing source alert that mutes the alert now (fingerprint, labels), or None.
    muting_source: str | None = None
    muting_labels: Mapping[str, str] | None = None


class RuleSources:
    """The alerts on one rule's source side (Alertmanager's per-rule source cache)."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self._alerts: dict[str, tuple[dict[str, str], datetime | None]] = {}

    def __len__(self) -> int:
        return len(self._alerts)

    def set(self, fingerprint: str, labels: Mapping[str, str], ends_at: datetime | None) -> None:
        self._alerts[fingerprint] = (dict(labels), ends_at)

    def delete(self, fingerprint: str) -> None:
        self._alerts.pop(fingerprint, None)

    def labels(self, fingerprint: str) -> dict[str, str]:
        return dict(self._alerts[fingerprint][0])

    def has_equal(
        self,
        labels: Mapping[str, str],
        *,
        exclude_two_sided: bool,
        now: datetime,
        fingerprint: str | None = None,
    ) -> str | None:
        """The fingerprint of a source that is still firing at ``now`` and equals ``labels``
        on every ``equal`` label, or None. With ``exclude_two_sided``, a source that also
        matches the rule's target side does not count (``InhibitRule.hasEqual``)."""
        for source_fp, (source_labels, ends_at) in self._alerts.items():
            if source_fp == fingerprint or (ends_at is not None and ends_at <= now):
                continue
            if any(source_labels.get(e, "") != labels.get(e, "") for e in self.rule.equal):
                continue
            if exclude_two_sided and matches_all(self.rule.target, source_labels):
                continue
            return source_fp
        return None


class Inhibitor:
    """Holds the firing candidates for every rule's source side."""

    def __init__(self, rules: Iterable[Rule] = BUILTIN_RULES) -> None:
        self.rules = tuple(rules)
        self.sources = tuple(RuleSources(rule) for rule in self.rules)

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
        for sources in self.sources:
            if firing and matches_all(sources.rule.source, labels):
                sources.set(fingerprint, labels, ends_at)
            else:
                sources.delete(fingerprint)

    def forget(self, fingerprint: str) -> None:
        for sources in self.sources:
            sources.delete(fingerprint)

    def muted_by(
        self, fingerprint: str, labels: Mapping[str, str], now: datetime
    ) -> Inhibition | None:
        """Alertmanager's ``Inhibitor.Mutes``: the first rule whose target side matches and
        that has an equal firing source (two-sided matches excluded), with that source."""
        for sources in self.sources:
            rule = sources.rule
            if not matches_all(rule.target, labels):
                continue
            source_fp = sources.has_equal(
                labels,
                exclude_two_sided=matches_all(rule.source, labels),
                now=now,
                fingerprint=fingerprint,
            )
            if source_fp is not None:
                return Inhibition(rule, source_fp)
        return None

    def rules_targeting(self, labels: Mapping[str, str]) -> list[Rule]:
        """The rules that could mute an alert with these labels (for test-route)."""
        return [r for r in self.rules if matches_all(r.target, labels)]

    def explain(self, labels: Mapping[str, str], now: datetime) -> list[RuleCheck]:
        """Every rule whose target side matches ``labels``, with the source muting it now."""
        checks: list[RuleCheck] = []
        for sources in self.sources:
            rule = sources.rule
            if not matches_all(rule.target, labels):
                continue
            two_sided = matches_all(rule.source, labels)
            source_fp = sources.has_equal(labels, exclude_two_sided=two_sided, now=now)
            if source_fp is None:
                checks.append(RuleCheck(rule, two_sided))
            else:
                checks.append(RuleCheck(rule, two_sided, source_fp, sources.labels(source_fp)))
        return checks
