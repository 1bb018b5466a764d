"""Matchers in the policy and in silences: RE2 regexes, every route-tree error found by
the loader with its line, a reload with a bad tree refused, silences stored in
Alertmanager's quoted form (and old unquoted silences still read)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from tokengov.app.cli.main import app
from tokengov.core.errors import PolicyError
from tokengov.core.matchers import Matcher, parse_matcher
from tokengov.core.policy import Policy, load_policy, parse_policy
from tokengov.core.worker_context import PolicyHolder
from tokengov.sinks.router.inhibit import Inhibitor, rules_from_policy
from tokengov.sinks.router.silences import Silence, new_silence
from tokengov.sinks.router.tree import RouteTree

T0 = datetime(2026, 1, 1, tzinfo=UTC)


# ------------------------------------------------------------------ RE2


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        # Alertmanager's idiom: a global flag inside the anchored group
        ("(?i)critical", "CRITICAL", True),
        ("(?i)critical", "not critical", False),  # anchored: the whole value
        # POSIX classes (RE2 syntax: [[:digit:]] is [0-9])
        ("[[:digit:]]+", "2026", True),
        ("[[:digit:]]+", "20a6", False),
        # Unicode classes (RE2: \p{L} any letter)
        (r"\p{L}+", "héllo", True),
        (r"\p{L}+", "h3llo", False),
        # RE2's \d is ASCII only ([0-9]); Python's re would take ARABIC-INDIC DIGIT THREE
        (r"\d", "\u0663", False),
        (r"\d", "3", True),
    ],
)
def test_regexes_are_re2_anchored_like_alertmanager(
    pattern: str, value: str, expected: bool
) -> None:
    assert Matcher("severity", "=~", pattern).matches_value(value) is expected
    assert Matcher("severity", "!~", pattern).matches_value(value) is not expected


@pytest.mark.parametrize("pattern", [r"(a)\1", "(?=x)x", "(?<!a)b", "a("])
def test_regexes_re2_does_not_have_are_refused(pattern: str) -> None:
    with pytest.raises(ValueError, match="invalid regular expression"):
        Matcher.regex("kind", pattern)


# ------------------------------------------------------------------ policy

GOOD = """version: 1
receivers:
  console: {type: log}
  pager: {type: log}
routes:
  receiver: console
  routes:
    - matchers: ['severity=~"(?i)critical"', 'team="search", kind!~"loop|retry_storm"']
      receiver: pager
    - match_re: {kind: "[[:alpha:]]+_storm"}
      receiver: pager
inhibit_rules:
  - source_matchers: ['kind="attribution_coverage"']
    target_matchers: ['kind=~"unpriced_model|missing_usage"']
    equal: [team]
"""


def test_matchers_route_and_inhibit_as_alertmanager() -> None:
    policy = parse_policy(GOOD)
    first = policy.routes.routes[0]
    assert [str(m) for m in first.parsed_matchers] == [
        'kind!~"loop|retry_storm"',
        'severity=~"(?i)critical"',
        'team="search"',
    ]
    tree = RouteTree.from_policy(policy)
    hit = {"severity": "CRITICAL", "team": "search", "kind": "runaway"}
    assert [m.receiver for m in tree.match(hit)] == ["pager"]
    assert [m.receiver for m in tree.match({**hit, "kind": "loop"})] == ["console"]
    assert [m.receiver for m in tree.match({"kind": "retry_storm"})] == ["pager"]

    inhibitor = Inhibitor(rules_from_policy(policy.inhibit_rules))
    inhibitor.observe("src", {"kind": "attribution_coverage", "team": "search"}, firing=True)
    muted = inhibitor.muted_by("t", {"kind": "missing_usage", "team": "search"}, T0)
    assert muted is not None and muted.source_fingerprint == "src"
    assert inhibitor.muted_by("t", {"kind": "missing_usage", "team": "growth"}, T0) is None


#: Every route-tree problem, each on its own line (numbers on the right).
BROKEN = """version: 1
receivers:
  console: {type: log}
  pager: {type: log}
  console: {type: log}
routes:
  receiver: console
  continue: true
  matchers: ['team="search"']
  routes:
    - match_re: {severity: "crit(ical"}
      receiver: pager
    - matchers: ['severity="critical', 'kind=~"a"']
      receiver: pager
    - group_by: [team, kind, team]
      receiver: pager
    - group_by: [team, '...']
      receiver: pager
    - group_by: [team-name]
      receiver: pager
    - receiver: nowhere
inhibit_rules:
  - source_matchers: ['kind=~"(?P<x>"']
    target_match: {kind: a}
    target_match: {kind: b}
    equal: [team.name]
"""

EXPECTED = {
    'line 5: receivers.console: duplicate key "console" (first at line 3, again at line 5',
    "line 8: routes.continue: the root route cannot have continue",
    "line 9: routes.matchers: the root route must not have any matchers",
    "line 11: routes.routes[0].match_re.severity: invalid regular expression",
    "line 13: routes.routes[1].matchers[0]: matcher value contains unescaped double quote",
    'line 15: routes.routes[2].group_by: duplicated label "team"',
    "line 17: routes.routes[3].group_by: cannot have '...'",
    'line 19: routes.routes[4].group_by[0]: invalid label name "team-name"',
    'line 21: routes.routes[5].receiver: undefined receiver "nowhere"',
    "line 23: inhibit_rules[0].source_matchers[0]: invalid regular expression",
    'line 25: inhibit_rules[0].target_match: duplicate key "target_match" (first at line 24',
    'line 26: inhibit_rules[0].equal[0]: invalid label name "team.name"',
}


def test_every_route_tree_problem_is_found_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(BROKEN)
    with pytest.raises(PolicyError) as raised:
        load_policy(path)
    problems = raised.value.problems
    for expected in EXPECTED:
        assert any(p.startswith(expected) for p in problems), (expected, problems)

    result = CliRunner().invoke(app, ["policy", "check", str(path)])
    assert result.exit_code == 1
    assert "routes.routes[1].matchers[0]: matcher value contains unescaped" in result.output


def test_a_policy_that_loads_builds_its_tree_and_rules() -> None:
    """What issue 15 measured: ``(?i)`` passed the check, then the router failed to build."""
    policy = parse_policy(
        GOOD.replace('"[[:alpha:]]+_storm"', '"(?i)RETRY_storm"').replace(
            "routes:\n  receiver", "routes:\n  group_by: ['...']\n  receiver"
        )
    )
    tree = RouteTree.from_policy(policy)
    assert tree.root.opts.group_by_all
    assert [m.receiver for m in tree.match({"kind": "retry_STORM"})] == ["pager"]
    rules_from_policy(policy.inhibit_rules)


def test_yaml_merge_keys_are_not_duplicates() -> None:
    policy = parse_policy(
        "version: 1\nreceivers:\n  a: &hook {type: log}\n  b:\n    <<: *hook\n    type: log\n"
        "routes: {receiver: a}\n"
    )
    assert set(policy.receivers) == {"a", "b"}


# ------------------------------------------------------------------ reload


def test_reload_refuses_a_bad_tree_and_keeps_the_one_in_force(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(GOOD)
    holder = PolicyHolder.from_file(path)
    built: list[RouteTree] = []

    def rebuild(policy: Policy) -> None:  # what the router role does on a swap
        built.append(RouteTree.from_policy(policy))
        rules_from_policy(policy.inhibit_rules)

    holder.subscribe(rebuild)
    before = holder.current
    for broken in (
        GOOD.replace(
            "routes:\n  receiver: console", "routes:\n  receiver: console\n  match: {team: x}"
        ),
        GOOD.replace('"(?i)critical"', '"(?i)crit(ical"'),
        GOOD.replace("equal: [team]", "equal: [team, team-x]"),
        GOOD.replace("  pager: {type: log}", "  pager: {type: log}\n  pager: {type: log}"),
    ):
        path.write_text(broken)
        with caplog.at_level(logging.ERROR):
            assert holder.reload() is False
        assert "policy reload REFUSED" in caplog.text
        caplog.clear()
        assert holder.current is before and built == []

    path.write_text(GOOD.replace('"(?i)critical"', '"(?i)critical|warning"'))
    assert holder.reload() is True
    [tree] = built
    assert [m.receiver for m in tree.match({"severity": "Warning", "team": "search"})] == ["pager"]


# ------------------------------------------------------------------ silences


def test_silence_matchers_round_trip_in_alertmanager_form() -> None:
    silence = new_silence(
        ['foo="bar "', 'msg="say \\"hi\\"\\n"', "dir=C:\\\\dir", "team=~sea.*"],
        created_by="oncall",
        reason="maintenance",
        ends_at=T0 + timedelta(hours=1),
        now=T0,
    )
    assert silence.matchers == [
        'foo="bar "',
        'msg="say \\"hi\\"\\n"',
        'dir="C:\\\\dir"',
        'team=~"sea.*"',
    ]
    stored = orjson.loads(silence.to_json())
    assert stored["matcher_syntax"] == "alertmanager"
    back = Silence.from_json(silence.to_json())
    assert back == silence
    labels = {"foo": "bar ", "msg": 'say "hi"\n', "dir": "C:\\dir", "team": "search"}
    assert back.mutes(labels, T0)
    assert not back.mutes({**labels, "foo": "bar"}, T0)  # the trailing space is kept


def test_silences_stored_before_issue_15_are_still_read() -> None:
    """The old form: name<op>value unquoted, no matcher_syntax (one pair of quotes dropped)."""
    old = {
        "silence_id": "s-1",
        "matchers": ["team=search", "kind=~loop|runaway", 'msg=say "hi"', "env='prod'"],
        "starts_at": "2026-01-01T00:00:00Z",
        "ends_at": "2026-01-01T02:00:00Z",
        "created_by": "oncall",
        "reason": "old",
        "updated_at": "2026-01-01T00:00:00Z",
    }
    silence = Silence.from_json(orjson.dumps(old))
    labels = {"team": "search", "kind": "runaway", "msg": 'say "hi"', "env": "prod"}
    assert silence.mutes(labels, T0 + timedelta(hours=1))
    assert not silence.mutes({**labels, "kind": "loops"}, T0 + timedelta(hours=1))
    # from now on kept in the quoted form, which reads back the same
    assert silence.matchers == [
        'team="search"',
        'kind=~"loop|runaway"',
        'msg="say \\"hi\\""',
        'env="prod"',
    ]
    assert Silence.from_json(silence.to_json()) == silence


def test_new_silences_refuse_what_alertmanager_refuses() -> None:
    for matchers, message in (
        (['foo="bar'], "unescaped double quote"),
        (["foo='bar'"], None),  # single quotes are ordinary characters
        (['foo=""'], "must not match the empty string"),
        (["foo!=bar"], None),  # != never counts as matching empty (silence.go matchesEmpty)
    ):
        if message is None:
            silence = new_silence(matchers, created_by="a", reason="b", ends_at=T0, now=T0)
            assert parse_matcher(silence.matchers[0]) == parse_matcher(matchers[0])
            continue
        with pytest.raises(ValueError, match=message):
            new_silence(matchers, created_by="a", reason="b", ends_at=T0, now=T0)
