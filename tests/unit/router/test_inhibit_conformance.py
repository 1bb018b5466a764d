"""Inhibition against Alertmanager's own test cases.

Ported as data from prometheus/alertmanager ``inhibit/inhibit_test.go`` at commit
68fb2d575 (``timeinterval: fix negative days_of_month across DST transitions``); each
case names its upstream test and case. Times are offsets in seconds from ``NOW``
(upstream: ``now.Add(...)``); ``None`` is Go's zero ``EndsAt`` (still firing).

Not ported: ``TestInhibitRule_fingerprintEquals`` and ``BenchmarkFingerprintEquals`` test
the per-rule index of equal-label fingerprints, an internal of Alertmanager that
tokengov does not have (docs/alerting.md, "Differences from Alertmanager").
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tokengov.core.matchers import Matcher
from tokengov.core.policy import parse_policy
from tokengov.sinks.router.dispatcher import Dispatcher
from tokengov.sinks.router.inhibit import Inhibitor, Rule, RuleSources, rules_from_policy
from tokengov.sinks.router.state import MemoryState
from tokengov.sinks.router.tree import RouteTree

NOW = datetime(2026, 11, 29, 5, 0, 0, tzinfo=UTC)
UPSTREAM = "inhibit/inhibit_test.go@68fb2d575"


def fp(labels: dict[str, str]) -> str:
    """A fingerprint from the label set, as Alertmanager's ``LabelSet.Fingerprint``."""
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def at(offset_s: float | None) -> datetime | None:
    return None if offset_s is None else NOW + timedelta(seconds=offset_s)


# -------------------------------------------------------- TestInhibitRuleHasEqual

HAS_EQUAL: list[dict[str, Any]] = [
    {
        "case": "TestInhibitRuleHasEqual/no source alerts",
        "sources": [],
        "equal": [],
        "input": {"a": "b"},
        "result": False,
    },
    {
        "case": "TestInhibitRuleHasEqual/no equal labels, any source alerts satisfies the "
        "requirement",
        "sources": [({}, None)],
        "equal": [],
        "input": {"a": "b"},
        "result": True,
    },
    {
        "case": "TestInhibitRuleHasEqual/matching but already resolved",
        "sources": [({"a": "b", "b": "f"}, -1), ({"a": "b", "b": "c"}, -1)],
        "equal": ["a", "b"],
        "input": {"a": "b", "b": "c"},
        "result": False,
    },
    {
        "case": "TestInhibitRuleHasEqual/matching and unresolved",
        "sources": [({"a": "b", "c": "d"}, -1), ({"a": "b", "c": "f"}, 3600)],
        "equal": ["a"],
        "input": {"a": "b"},
        "result": True,
    },
    {
        "case": "TestInhibitRuleHasEqual/equal label does not match",
        "sources": [({"a": "c", "c": "d"}, -1), ({"a": "c", "c": "f"}, -1)],
        "equal": ["a"],
        "input": {"a": "b"},
        "result": False,
    },
]


@pytest.mark.parametrize("case", HAS_EQUAL, ids=[c["case"] for c in HAS_EQUAL])
def test_has_equal(case: dict[str, Any]) -> None:
    sources = RuleSources(Rule("r", (), (), tuple(case["equal"])))
    for labels, ends in case["sources"]:
        sources.set(fp(labels), labels, at(ends))
    found = sources.has_equal(case["input"], exclude_two_sided=False, now=NOW)
    assert (found is not None) == case["result"], f"{UPSTREAM} {case['case']}"


# --------------------------------- TestInhibitRuleMatches / TestInhibitRuleMatchers

#: Both upstream tests use these two source alerts, each firing for the next hour.
SOURCE_ALERTS = [{"s1": "1", "t1": "2", "e": "1"}, {"s2": "1", "t2": "1", "e": "1"}]

RULES_MATCH = parse_policy("""
version: 1
receivers: {c: {type: log}}
routes: {receiver: c}
inhibit_rules:
  - {source_match: {s1: "1"}, target_match: {t1: "1"}, equal: [e]}
  - {source_match: {s2: "1"}, target_match: {t2: "1"}, equal: [e]}
""").inhibit_rules

#: TestInhibitRuleMatchers' rules use ``source_matchers``/``target_matchers``; built here
#: from tokengov's matchers (rule 1's target is ``t1!="1"``).
RULES_MATCHERS = [
    Rule("rule1", (Matcher("s1", "=", "1"),), (Matcher("t1", "!=", "1"),), ("e",)),
    Rule("rule2", (Matcher("s2", "=", "1"),), (Matcher("t2", "=", "1"),), ("e",)),
]

MATCHES: list[tuple[str, dict[str, str], bool]] = [
    (
        "TestInhibitRuleMatches: matches target filter of rule1, inhibited",
        {"t1": "1", "e": "1"},
        True,
    ),
    (
        "TestInhibitRuleMatches: matches target filter of rule2, inhibited",
        {"t2": "1", "e": "1"},
        True,
    ),
    (
        "TestInhibitRuleMatches: matches target filter of rule1 (plus noise), inhibited",
        {"t1": "1", "t3": "1", "e": "1"},
        True,
    ),
    (
        "TestInhibitRuleMatches: matches target filter of rule1 plus rule2, inhibited",
        {"t1": "1", "t2": "1", "e": "1"},
        True,
    ),
    (
        "TestInhibitRuleMatches: doesn't match target filter, not inhibited",
        {"t1": "0", "e": "1"},
        False,
    ),
    (
        "TestInhibitRuleMatches: matches both source and target filters of rule1, inhibited "
        "because sourceAlert1 matches only the source filter of rule1",
        {"s1": "1", "t1": "1", "e": "1"},
        True,
    ),
    (
        "TestInhibitRuleMatches: matches both source and target filters of rule2, not inhibited "
        "because sourceAlert2 matches also both the source and target filter of rule2",
        {"s2": "1", "t2": "1", "e": "1"},
        False,
    ),
    (
        "TestInhibitRuleMatches: matches target filter, equal label doesn't match, not inhibited",
        {"t1": "1", "e": "0"},
        False,
    ),
]

MATCHERS: list[tuple[str, dict[str, str], bool]] = [
    ("TestInhibitRuleMatchers: case 1", {"t1": "1", "e": "1"}, False),
    ("TestInhibitRuleMatchers: case 2", {"t2": "1", "e": "1"}, True),
    ("TestInhibitRuleMatchers: case 3", {"t1": "1", "t3": "1", "e": "1"}, False),
    ("TestInhibitRuleMatchers: case 4", {"t1": "1", "t2": "1", "e": "1"}, True),
    ("TestInhibitRuleMatchers: case 5", {"t1": "0", "e": "1"}, True),
    ("TestInhibitRuleMatchers: case 6", {"s1": "1", "t1": "1", "e": "1"}, False),
    ("TestInhibitRuleMatchers: case 7", {"s2": "1", "t2": "1", "e": "1"}, True),
    ("TestInhibitRuleMatchers: case 8", {"t1": "1", "e": "0"}, False),
]


def _with_sources(rules: list[Rule]) -> Inhibitor:
    inhibitor = Inhibitor(rules)
    for labels in SOURCE_ALERTS:
        inhibitor.observe(fp(labels), labels, firing=True, ends_at=at(3600))
    return inhibitor


def _check_mutes(inhibitor: Inhibitor, target: dict[str, str], want: bool, case: str) -> None:
    """Upstream ``checkMutes``: the result, and a muted alert names what inhibits it."""
    got = inhibitor.muted_by(fp(target), target, NOW)
    assert (got is not None) == want, f"{UPSTREAM} {case}"
    if got is not None:
        assert got.source_fingerprint in {fp(s) for s in SOURCE_ALERTS} - {fp(target)}


@pytest.mark.parametrize(("case", "target", "want"), MATCHES, ids=[c[0] for c in MATCHES])
def test_rule_matches(case: str, target: dict[str, str], want: bool) -> None:
    _check_mutes(_with_sources(rules_from_policy(RULES_MATCH)), target, want, case)


@pytest.mark.parametrize(("case", "target", "want"), MATCHERS, ids=[c[0] for c in MATCHERS])
def test_rule_matchers(case: str, target: dict[str, str], want: bool) -> None:
    _check_mutes(_with_sources(RULES_MATCHERS), target, want, case)


# ------------------------------------------------------------- TestInhibitRuleName


def test_rule_name() -> None:
    """TestInhibitRuleName: a named rule adopts its name from the config. An unnamed rule
    is named by its path in the policy (Alertmanager leaves it empty)."""
    policy = parse_policy("""
version: 1
receivers: {c: {type: log}}
routes: {receiver: c}
inhibit_rules:
  - {name: test-rule, source_match: {severity: critical}, target_match: {severity: warning},
     equal: [instance]}
  - {source_match: {severity: critical}, target_match: {severity: warning}, equal: [instance]}
""")
    named, unnamed = rules_from_policy(policy.inhibit_rules)
    assert named.name == "test-rule"
    assert unnamed.name == "inhibit_rules[1]"


# ------------------------------------------------------------------- TestInhibit

ALERT_ONE = ({"t": "1", "e": "f"}, 3600)


def _alert_two(resolved: bool) -> tuple[dict[str, str], float]:
    return ({"s": "1", "e": "f"}, -1 if resolved else 3600)


INHIBIT: list[dict[str, Any]] = [
    {
        "case": "TestInhibit[0]: alertOne shouldn't be muted since alertTwo hasn't fired",
        "alerts": [ALERT_ONE],
        "expected": [({"t": "1", "e": "f"}, False)],
    },
    {
        "case": "TestInhibit[1]: alertOne should be muted by alertTwo which is active",
        "alerts": [ALERT_ONE, _alert_two(False)],
        "expected": [({"t": "1", "e": "f"}, True), ({"s": "1", "e": "f"}, False)],
    },
    {
        "case": "TestInhibit[2]: alertOne shouldn't be muted since alertTwo is resolved",
        "alerts": [ALERT_ONE, _alert_two(False), _alert_two(True)],
        "expected": [({"t": "1", "e": "f"}, False), ({"s": "1", "e": "f"}, False)],
    },
]


@pytest.mark.parametrize("case", INHIBIT, ids=[c["case"] for c in INHIBIT])
def test_inhibit(case: dict[str, Any]) -> None:
    rules = parse_policy("""
version: 1
receivers: {c: {type: log}}
routes: {receiver: c}
inhibit_rules: [{source_match: {s: "1"}, target_match: {t: "1"}, equal: [e]}]
""").inhibit_rules
    inhibitor = Inhibitor(rules_from_policy(rules))
    for labels, ends in case["alerts"]:
        ends_at = at(ends)
        firing = ends_at is None or ends_at > NOW  # as the dispatcher decides
        inhibitor.observe(fp(labels), labels, firing=firing, ends_at=ends_at)
    for labels, muted in case["expected"]:
        got = inhibitor.muted_by(fp(labels), labels, NOW)
        assert (got is not None) == muted, f"{UPSTREAM} {case['case']} {labels}"


# ------------------------------------------- tokengov's own cases (issue 15)


def test_two_alerts_matching_both_sides_do_not_mute_each_other() -> None:
    """Two distinct alerts that each match the source and the target side (issue 15): as
    Alertmanager, neither mutes the other; a plain target is still muted by either."""
    rule = Rule("r", (Matcher("severity", "=", "critical"),), (Matcher("team", "=", "search"),), ())
    inhibitor = Inhibitor([rule])
    a = {"severity": "critical", "team": "search", "task": "a"}
    b = {"severity": "critical", "team": "search", "task": "b"}
    for labels in (a, b):
        inhibitor.observe(fp(labels), labels, firing=True)
    assert inhibitor.muted_by(fp(a), a, NOW) is None
    assert inhibitor.muted_by(fp(b), b, NOW) is None
    warning = {"severity": "warning", "team": "search"}
    assert inhibitor.muted_by(fp(warning), warning, NOW) is not None


def test_source_stops_inhibiting_when_its_end_passes() -> None:
    rule = Rule("r", (Matcher("s", "=", "1"),), (Matcher("t", "=", "1"),), ("e",))
    inhibitor = Inhibitor([rule])
    inhibitor.observe("src", {"s": "1", "e": "x"}, firing=True, ends_at=at(60))
    target = {"t": "1", "e": "x"}
    assert inhibitor.muted_by("tgt", target, NOW) is not None
    assert inhibitor.muted_by("tgt", target, NOW + timedelta(seconds=60)) is None
    # equal labels absent on both sides count as equal
    inhibitor.observe("src2", {"s": "1"}, firing=True)
    assert inhibitor.muted_by("tgt2", {"t": "1"}, NOW) is not None


def test_an_alert_never_inhibits_itself() -> None:
    rule = Rule("r", (Matcher("s", "=", "1"),), (Matcher("t", "=", "1"),), ())
    inhibitor = Inhibitor([rule])
    inhibitor.observe("x", {"s": "1", "t": "1"}, firing=True)
    assert inhibitor.muted_by("x", {"s": "1", "t": "1"}, NOW) is None


def test_dispatcher_notifies_both_alerts_that_match_both_sides(make_alert, clock) -> None:
    """Issue 15's report, end to end in the dispatcher: a rule whose source and target both
    match two critical alerts of one team used to mute both, so nothing was sent."""
    policy = parse_policy("""
version: 1
teams: {search: {owner: s@example.com}}
receivers: {c: {type: log}}
routes: {receiver: c, group_by: [team], group_wait: 1s}
inhibit_rules:
  - {source_match: {severity: critical}, target_match: {team: search}, equal: [team]}
""")
    d = Dispatcher(
        RouteTree.from_policy(policy),
        MemoryState(),
        inhibitor=Inhibitor(rules_from_policy(policy.inhibit_rules)),
        clock=clock,
    )
    d.ingest(make_alert(task="t-1"))
    d.ingest(make_alert(task="t-2"))
    d.ingest(make_alert(task="t-3", severity="warning"))  # a plain target: muted
    clock.advance(1)
    [n] = d.flush_due()
    assert sorted(a.task_id or "" for a in n.alerts) == ["t-1", "t-2"]
