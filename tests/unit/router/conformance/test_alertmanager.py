"""Alertmanager's own test cases (github.com/prometheus/alertmanager at commit 68fb2d575),
ported as data in this folder, run against tokengov's matchers, policy loader, route tree
and silences. A case tokengov deliberately does not express is skipped with its reason
(docs/alerting.md, "Differences from Alertmanager")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from tests.unit.router.conformance import config, labels, routes, silences, utf8_parser
from tokengov.core.errors import PolicyError
from tokengov.core.matchers import Matcher, parse_matcher, parse_matchers
from tokengov.core.policy import parse_policy
from tokengov.sinks.router.silences import Silence, SilenceStore
from tokengov.sinks.router.tree import RouteTree

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _ids(cases: Any) -> list[str]:
    return [c.upstream for c in cases]


def _triples(matchers: list[Matcher]) -> tuple[tuple[str, str, str], ...]:
    return tuple((m.name, m.op, m.value) for m in matchers)


# ------------------------------------------------------- pkg/labels (the classic parser)


@pytest.mark.parametrize("case", labels.PARSE_MATCHERS, ids=_ids(labels.PARSE_MATCHERS))
def test_parse_matchers(case: labels.ParseCase) -> None:
    if case.error is None:
        assert _triples(parse_matchers(case.input)) == case.want
        return
    with pytest.raises(ValueError) as raised:
        parse_matchers(case.input)
    if case.error.startswith("error parsing regexp"):
        # Go's regexp words its errors its own way; RE2 refuses the same pattern
        assert str(raised.value).startswith("invalid regular expression")
    else:
        assert str(raised.value) == case.error


@pytest.mark.parametrize("case", labels.MATCHES, ids=_ids(labels.MATCHES))
def test_matcher_matches(case: labels.MatchCase) -> None:
    assert Matcher("", case.op, case.pattern).matches_value(case.value) is case.match  # type: ignore[arg-type]


@pytest.mark.parametrize("case", labels.STRINGS, ids=_ids(labels.STRINGS))
def test_matcher_string(case: labels.StringCase) -> None:
    matcher = Matcher(case.name, case.op, case.value)  # type: ignore[arg-type]
    assert str(matcher) == case.want


@pytest.mark.parametrize(
    "case",
    [c for c in labels.STRINGS if not c.want.startswith('"')],
    ids=_ids([c for c in labels.STRINGS if not c.want.startswith('"')]),
)
def test_matcher_string_parses_back(case: labels.StringCase) -> None:
    """The stored form round-trips (names that need quotes are the UTF-8 parser's)."""
    if case.name != "foo":
        pytest.skip("a label name outside [a-zA-Z_][a-zA-Z0-9_]*: only the UTF-8 parser reads it")
    back = parse_matcher(case.want)
    assert (back.name, back.op, back.value) == (case.name, case.op, case.value)


# ------------------------------------------------------- matcher/parse (the UTF-8 parser)


def _utf8(case: utf8_parser.Utf8Case, parse: Any) -> None:
    if case.status not in (None, "compat_braces"):
        pytest.skip(case.status)
    if case.error is None and case.status is None:
        assert _triples(parse(case.input)) == case.want
    else:
        with pytest.raises(ValueError):
            parse(case.input)


@pytest.mark.parametrize("case", utf8_parser.MATCHERS, ids=_ids(utf8_parser.MATCHERS))
def test_utf8_parser_matchers(case: utf8_parser.Utf8Case) -> None:
    _utf8(case, parse_matchers)


@pytest.mark.parametrize("case", utf8_parser.MATCHER, ids=_ids(utf8_parser.MATCHER))
def test_utf8_parser_matcher(case: utf8_parser.Utf8Case) -> None:
    _utf8(case, lambda text: [parse_matcher(text)])


# ------------------------------------------------------- silence/silence_test.go


def _silence(matchers: list[str], starts: datetime | None, ends: datetime | None) -> Silence:
    doc: dict[str, Any] = {
        "silence_id": "some_id",
        "matchers": matchers,
        "created_by": "conformance",
        "reason": "upstream case",
        "updated_at": T0,
    }
    if starts is not None:
        doc["starts_at"] = starts
    if ends is not None:
        doc["ends_at"] = ends
    return Silence.model_validate(doc)


@pytest.mark.parametrize("case", silences.VALIDATE_MATCHER, ids=_ids(silences.VALIDATE_MATCHER))
def test_silence_validates_matcher(case: silences.MatcherCase) -> None:
    if case.skip:
        pytest.skip(case.skip)
    if case.error is None:
        _silence([case.matcher], T0, T0 + timedelta(hours=1))
        return
    with pytest.raises(ValueError, match=case.error):
        _silence([case.matcher], T0, T0 + timedelta(hours=1))


@pytest.mark.parametrize("case", silences.VALIDATE_SILENCE, ids=_ids(silences.VALIDATE_SILENCE))
def test_silence_validates(case: silences.SilenceCase) -> None:
    starts = None if case.starts_in_s is None else T0 + timedelta(seconds=case.starts_in_s)
    ends = None if case.ends_in_s is None else T0 + timedelta(seconds=case.ends_in_s)
    if case.error is None:
        _silence(list(case.matchers), starts, ends)
        return
    with pytest.raises(ValueError):
        _silence(list(case.matchers), starts, ends)


@pytest.mark.parametrize("case", silences.QMATCHES, ids=_ids(silences.QMATCHES))
def test_silence_matches(case: silences.QMatchesCase) -> None:
    if case.skip:
        pytest.skip(case.skip)
    [matchers] = case.matcher_sets
    silence = _silence(list(matchers), T0, T0 + timedelta(hours=1))
    assert silence.mutes(silences.QMATCHES_LABELS, T0) is case.matches


def test_silencer() -> None:
    """silence_test.go TestSilencer: silences set, expiring, moved into the future, overlapping."""
    store = SilenceStore()
    version = 0
    for step in silences.SILENCER:
        now = T0 + timedelta(seconds=step.at_s)
        if step.sets is not None:
            key, matcher, starts_in, ends_in = step.sets
            version += 1
            store.apply(
                Silence(
                    silence_id=key,
                    matchers=[matcher],
                    starts_at=now + timedelta(seconds=starts_in),
                    ends_at=now + timedelta(seconds=ends_in),
                    created_by="conformance",
                    reason=silences.SILENCER_UPSTREAM,
                    updated_at=T0 + timedelta(microseconds=version),
                )
            )
        assert bool(store.muting({"foo": "bar"}, now)) is step.muted, step


# ------------------------------------------------------- config/config_test.go


@pytest.mark.parametrize("case", config.CASES, ids=_ids(config.CASES))
def test_config(case: config.ConfigCase) -> None:
    if case.skip:
        pytest.skip(case.skip)
    if case.error is not None:
        with pytest.raises(PolicyError) as raised:
            parse_policy(case.policy)
        assert case.error in str(raised.value)
        return
    policy = parse_policy(case.policy)
    tree = RouteTree.from_policy(policy)  # a policy that loads builds its tree
    if "TestGroupByAll " in case.upstream:
        assert tree.root.opts.group_by_all
    if "TestGroupByEmptyOverride" in case.upstream:
        assert len(tree.root.opts.group_by) == 2
        assert policy.routes.routes[0].group_by == []
        assert tree.root.children[0].opts.group_by == frozenset()
    if "TestEmptyFieldsAndRegex" in case.upstream:
        assert policy.routes.routes[0].match_re == {"service": "^(foo1|foo2|baz)$"}


# ------------------------------------------------------- dispatch/route_test.go


def _tree(upstream_yaml: str) -> RouteTree:
    """Upstream's route YAML under ``routes:``, with every receiver it names defined."""
    doc = yaml.safe_load(upstream_yaml)
    names: set[str] = set()

    def walk(route: dict[str, Any]) -> None:
        if route.get("receiver"):
            names.add(route["receiver"])
        for child in route.get("routes", []):
            walk(child)

    doc.setdefault("receiver", "default")
    walk(doc)
    policy = {"version": 1, "receivers": {n: {"type": "log"} for n in names}, "routes": doc}
    return RouteTree.from_policy(parse_policy(yaml.safe_dump(policy)))


def _opts(match: Any) -> routes.Opts:
    o = match.node.opts
    return (
        match.receiver,
        tuple(sorted(o.group_by)),
        o.group_by_all,
        int(o.group_wait.total_seconds()),
        int(o.group_interval.total_seconds()),
        int(o.repeat_interval.total_seconds()),
    )


@pytest.mark.parametrize(
    ("tree", "case"),
    [(t.tree, c) for t in routes.TABLES for c in t.cases],
    ids=[c.upstream for t in routes.TABLES for c in t.cases],
)
def test_route_match(tree: str, case: routes.MatchCase) -> None:
    assert tuple(_opts(m) for m in _tree(tree).match(case.labels)) == case.want


def test_route_walk() -> None:
    tree = _tree(routes.ROUTE_WALK_TREE)
    assert tuple(n.opts.receiver for n in tree.nodes()) == routes.ROUTE_WALK


def test_inherit_parent_group_by_all() -> None:
    tree = _tree(routes.INHERIT_GROUP_BY_ALL_TREE)
    parent = tree.root.children[0]
    got = (parent.opts.group_by_all, *(c.opts.group_by_all for c in parent.children))
    assert got == routes.INHERIT_GROUP_BY_ALL


@pytest.mark.parametrize("upstream", sorted(routes.SKIPPED))
def test_route_cases_not_expressed(upstream: str) -> None:
    pytest.skip(routes.SKIPPED[upstream])
