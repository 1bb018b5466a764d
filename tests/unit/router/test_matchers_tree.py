from __future__ import annotations

from datetime import timedelta

import pytest

from tokengov.core.errors import PolicyError
from tokengov.core.matchers import Matcher, parse_matcher
from tokengov.core.policy import parse_policy
from tokengov.sinks.router.tree import DEFAULT_GROUP_WAIT, RouteTree


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("team=search", {"team": "search"}, True),
        ("team=search", {"team": "searching"}, False),
        ("team!=search", {"team": "growth"}, True),
        ("team!=search", {}, True),
        ("task_id=~t-8.*", {"task_id": "t-8812"}, True),
        ("task_id=~t-8", {"task_id": "t-8812"}, False),  # anchored, as in Alertmanager
        ("severity!~info|warning", {"severity": "critical"}, True),
        ("severity!~info|warning", {"severity": "info"}, False),
        ('workflow="doc-qa"', {"workflow": "doc-qa"}, True),
        ("workflow=", {}, True),  # an absent label is the empty string
    ],
)
def test_matcher_semantics(text, labels, expected):
    assert parse_matcher(text).matches(labels) is expected


def test_bad_matchers_are_named():
    with pytest.raises(ValueError, match="bad matcher format"):
        parse_matcher("team")
    with pytest.raises(ValueError, match="invalid regular expression"):
        parse_matcher("team=~(")
    assert Matcher("team", "=~", ".*").matches_empty()


def test_routes_match_depth_first_with_continue(policy):
    tree = RouteTree.from_policy(policy)
    matches = tree.match({"team": "search", "severity": "critical", "kind": "runaway"})
    assert [(m.node.path, m.receiver) for m in matches] == [
        ("routes.routes[0]", "search-pager"),
        ("routes.routes[1]", "ops-hook"),
    ]


def test_first_match_without_continue_stops_the_level(policy):
    tree = RouteTree.from_policy(policy)
    matches = tree.match({"team": "search", "severity": "warning", "kind": "loop"})
    assert [(m.node.path, m.receiver) for m in matches] == [
        ("routes.routes[1].routes[0]", "console")
    ]


def test_children_inherit_unset_options(policy):
    tree = RouteTree.from_policy(policy)
    pager, hook = tree.root.children
    loop = hook.children[0]
    assert pager.opts.group_wait == timedelta(seconds=2)
    assert pager.opts.group_interval == timedelta(minutes=1)
    assert pager.opts.group_by == {"team", "kind"}
    assert hook.opts.group_wait == timedelta(seconds=10)
    assert loop.opts.group_by == {"team", "kind", "task_id"}  # from its parent, not the root
    assert loop.opts.repeat_interval == timedelta(hours=1)
    assert loop.opts.receiver == "console"


def test_unmatched_alert_goes_to_the_root_and_alertmanager_defaults_apply():
    policy = parse_policy(
        "version: 1\nreceivers: {console: {type: log}}\nroutes: {receiver: console}\n"
    )
    tree = RouteTree.from_policy(policy)
    [match] = tree.match({"team": "growth", "kind": "loop"})
    assert match.node is tree.root and match.receiver == "console" and not match.team_receiver
    assert tree.root.opts.group_wait == DEFAULT_GROUP_WAIT
    assert tree.root.opts.group_by == frozenset()


def test_team_receiver_is_used_only_when_no_route_matched():
    policy = parse_policy(
        """
version: 1
teams:
  search: {owner: s@example.com, receiver: search-slack}
  support: {owner: p@example.com, receiver: search-slack}
receivers:
  console: {type: log}
  search-slack: {type: slack, url: "https://hooks.example.com/x"}
  ops-hook: {type: webhook, url: "https://hooks.example.com/y"}
routes:
  receiver: console
  routes:
    - {match: {team: support, kind: loop}, receiver: ops-hook}
"""
    )
    tree = RouteTree.from_policy(policy)
    [search] = tree.match({"team": "search", "kind": "runaway"})
    assert (search.receiver, search.team_receiver, search.node.path) == (
        "search-slack",
        True,
        "routes",
    )
    [support_loop] = tree.match({"team": "support", "kind": "loop"})
    assert (support_loop.receiver, support_loop.team_receiver) == ("ops-hook", False)
    [nobody] = tree.match({"team": "tokengov", "kind": "receiver_failing"})
    assert nobody.receiver == "console"


def test_group_by_all_and_regex_routes():
    policy = parse_policy(
        """
version: 1
receivers: {console: {type: log}, hook: {type: webhook, url: "http://x"}}
routes:
  receiver: console
  routes:
    - {match_re: {kind: "runaway|loop"}, receiver: hook, group_by: ["..."]}
"""
    )
    tree = RouteTree.from_policy(policy)
    [m] = tree.match({"kind": "loop"})
    assert m.receiver == "hook" and m.node.opts.group_by_all
    [m] = tree.match({"kind": "looping"})
    assert m.receiver == "console"


def test_explain_says_why(policy):
    tree = RouteTree.from_policy(policy)
    steps = tree.explain({"team": "search", "severity": "critical", "kind": "runaway"})
    text = "\n".join(f"{s.path}: {s.detail}" for s in steps)
    assert "routes.routes[0]: continue: true" in text
    assert 'routes.routes[1].routes[0]: kind="loop" fails (kind is "runaway")' in text
    steps = tree.explain({"team": "support", "kind": "runaway"})
    assert any("no child route matched" in s.detail for s in steps)


def test_policy_rejects_zero_interval():
    with pytest.raises(PolicyError, match="group_interval: must be greater than 0"):
        parse_policy(
            "version: 1\nreceivers: {c: {type: log}}\nroutes: {receiver: c, group_interval: 0s}\n"
        )


def test_receiver_failing_always_goes_to_the_default_receiver():
    policy = parse_policy(
        """
version: 1
receivers: {console: {type: log}, pager: {type: pagerduty, routing_key_env: K}}
routes:
  receiver: console
  routes: [{match: {severity: critical}, receiver: pager}]
"""
    )
    tree = RouteTree.from_policy(policy)
    [m] = tree.match({"kind": "receiver_failing", "severity": "critical", "receiver": "pager"})
    assert (m.receiver, m.node.path) == ("console", "routes")
    [step] = tree.explain({"kind": "receiver_failing"})
    assert "default receiver" in step.detail


def test_every_alert_kind_of_the_contract_is_routed_by_the_example_policy():
    """A new alert kind (missing_usage, issue 14) reaches a receiver through the example
    policy's routes like every other kind."""
    from pathlib import Path
    from typing import get_args

    from tokengov.core.contracts import AlertKind

    assert "missing_usage" in get_args(AlertKind)
    example = Path(__file__).resolve().parents[3] / "examples" / "policy.yaml"
    tree = RouteTree.from_policy(parse_policy(example.read_text()))
    for kind in get_args(AlertKind):
        matches = tree.match({"team": "search", "workflow": "support-triage", "kind": kind})
        assert matches and all(m.receiver for m in matches), kind
