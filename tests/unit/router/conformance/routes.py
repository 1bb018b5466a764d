"""Alertmanager's route-matching tests, as data: ``dispatch/route_test.go`` of
github.com/prometheus/alertmanager at commit 68fb2d575.

Each tree is upstream's YAML verbatim; the test puts it under tokengov's ``routes:`` key
and defines every receiver it names (``type: log``). An expected match is upstream's
``RouteOpts``: receiver, group_by labels (sorted), group_by_all and the three timings in
seconds (upstream's ``DefaultRouteOpts``: 30s, 5m, 4h, group by nothing). Route keys
(``{}/{owner="team-A"}``) are not compared: tokengov names a route by its path in the
policy file (docs/alerting.md, "Differences from Alertmanager").
"""

from __future__ import annotations

from typing import NamedTuple

#: (receiver, group_by, group_by_all, group_wait_s, group_interval_s, repeat_interval_s)
Opts = tuple[str, tuple[str, ...], bool, int, int, int]


class MatchCase(NamedTuple):
    upstream: str
    labels: dict[str, str]
    want: tuple[Opts, ...]


class RouteTable(NamedTuple):
    upstream: str
    tree: str
    cases: tuple[MatchCase, ...]


ROUTE_MATCH = RouteTable(
    "dispatch/route_test.go TestRouteMatch line 28",
    "\nreceiver: 'notify-def'\n\nroutes:\n- match:\n    owner: 'team-A'\n\n  receiver: 'notify-A'\n\n  routes:\n  - match:\n      env: 'testing'\n\n    receiver: 'notify-testing'\n    group_by: [...]\n\n  - match:\n      env: \"production\"\n\n    receiver: 'notify-productionA'\n    group_wait: 1m\n\n    continue: true\n\n  - match_re:\n      env: \"produ.*\"\n      job: \".*\"\n\n    receiver: 'notify-productionB'\n    group_wait: 30s\n    group_interval: 5m\n    repeat_interval: 1h\n    group_by: ['job']\n\n- match_re:\n    owner: 'team-(B|C)'\n\n  group_by: ['foo', 'bar']\n  group_wait: 2m\n  receiver: 'notify-BC'\n\n- match:\n    group_by: 'role'\n  group_by: ['role']\n\n  routes:\n  - match:\n      env: 'testing'\n    receiver: 'notify-testing'\n    routes:\n    - match:\n        wait: 'long'\n      group_wait: 2m\n",
    (
        MatchCase(
            "dispatch/route_test.go TestRouteMatch case at line 106",
            {"owner": "team-A"},
            (("notify-A", (), False, 30, 300, 14400),),
        ),
        MatchCase(
            "dispatch/route_test.go TestRouteMatch case at line 123",
            {"owner": "team-A", "env": "unset"},
            (("notify-A", (), False, 30, 300, 14400),),
        ),
        MatchCase(
            "dispatch/route_test.go TestRouteMatch case at line 141",
            {"owner": "team-C"},
            (("notify-BC", ("bar", "foo"), False, 120, 300, 14400),),
        ),
        MatchCase(
            "dispatch/route_test.go TestRouteMatch case at line 158",
            {"owner": "team-A", "env": "testing"},
            (("notify-testing", (), True, 30, 300, 14400),),
        ),
        MatchCase(
            "dispatch/route_test.go TestRouteMatch case at line 176",
            {"owner": "team-A", "env": "production"},
            (
                ("notify-productionA", (), False, 60, 300, 14400),
                ("notify-productionB", ("job",), False, 30, 300, 3600),
            ),
        ),
        MatchCase(
            "dispatch/route_test.go TestRouteMatch case at line 206",
            {"group_by": "role"},
            (("notify-def", ("role",), False, 30, 300, 14400),),
        ),
        MatchCase(
            "dispatch/route_test.go TestRouteMatch case at line 223",
            {"env": "testing", "group_by": "role"},
            (("notify-testing", ("role",), False, 30, 300, 14400),),
        ),
        MatchCase(
            "dispatch/route_test.go TestRouteMatch case at line 241",
            {"env": "testing", "group_by": "role", "wait": "long"},
            (("notify-testing", ("role",), False, 120, 300, 14400),),
        ),
    ),
)


ROUTE_MATCHERS = RouteTable(
    "dispatch/route_test.go TestRouteMatchers line 395",
    "\nreceiver: 'notify-def'\n\nroutes:\n- matchers: ['{owner=\"team-A\"}', '{level!=\"critical\"}']\n\n  receiver: 'notify-A'\n\n  routes:\n  - matchers: ['{env=\"testing\"}', '{baz!~\".*quux\"}']\n\n    receiver: 'notify-testing'\n    group_by: [...]\n\n  - matchers: ['{env=\"production\"}']\n\n    receiver: 'notify-productionA'\n    group_wait: 1m\n\n    continue: true\n\n  - matchers: [ env=~\"produ.*\", job=~\".*\"]\n\n    receiver: 'notify-productionB'\n    group_wait: 30s\n    group_interval: 5m\n    repeat_interval: 1h\n    group_by: ['job']\n\n\n- matchers: [owner=~\"team-(B|C)\"]\n\n  group_by: ['foo', 'bar']\n  group_wait: 2m\n  receiver: 'notify-BC'\n\n- matchers: [group_by=\"role\"]\n  group_by: ['role']\n\n  routes:\n  - matchers: ['{env=\"testing\"}']\n    receiver: 'notify-testing'\n    routes:\n    - matchers: [wait=\"long\"]\n      group_wait: 2m\n",
    (
        MatchCase(
            "dispatch/route_test.go TestRouteMatchers case at line 465",
            {"owner": "team-A"},
            (("notify-A", (), False, 30, 300, 14400),),
        ),
        MatchCase(
            "dispatch/route_test.go TestRouteMatchers case at line 482",
            {"owner": "team-A", "env": "unset"},
            (("notify-A", (), False, 30, 300, 14400),),
        ),
        MatchCase(
            "dispatch/route_test.go TestRouteMatchers case at line 500",
            {"owner": "team-C"},
            (("notify-BC", ("bar", "foo"), False, 120, 300, 14400),),
        ),
        MatchCase(
            "dispatch/route_test.go TestRouteMatchers case at line 517",
            {"owner": "team-A", "env": "testing"},
            (("notify-testing", (), True, 30, 300, 14400),),
        ),
        MatchCase(
            "dispatch/route_test.go TestRouteMatchers case at line 535",
            {"owner": "team-A", "env": "production"},
            (
                ("notify-productionA", (), False, 60, 300, 14400),
                ("notify-productionB", ("job",), False, 30, 300, 3600),
            ),
        ),
        MatchCase(
            "dispatch/route_test.go TestRouteMatchers case at line 565",
            {"group_by": "role"},
            (("notify-def", ("role",), False, 30, 300, 14400),),
        ),
        MatchCase(
            "dispatch/route_test.go TestRouteMatchers case at line 582",
            {"env": "testing", "group_by": "role"},
            (("notify-testing", ("role",), False, 30, 300, 14400),),
        ),
        MatchCase(
            "dispatch/route_test.go TestRouteMatchers case at line 600",
            {"env": "testing", "group_by": "role", "wait": "long"},
            (("notify-testing", ("role",), False, 120, 300, 14400),),
        ),
    ),
)


ROUTE_MATCHERS_AND_MATCH = RouteTable(
    "dispatch/route_test.go TestRouteMatchersAndMatch line 639",
    "\nreceiver: 'notify-def'\n\nroutes:\n- matchers: ['{owner=\"team-A\"}', '{level!=\"critical\"}']\n\n  receiver: 'notify-A'\n\n  routes:\n  - matchers: ['{env=\"testing\"}', '{baz!~\".*quux\"}']\n\n    receiver: 'notify-testing'\n    group_by: [...]\n\n  - match:\n      env: \"production\"\n\n    receiver: 'notify-productionA'\n    group_wait: 1m\n\n    continue: true\n\n  - matchers: [ env=~\"produ.*\", job=~\".*\"]\n\n    receiver: 'notify-productionB'\n    group_wait: 30s\n    group_interval: 5m\n    repeat_interval: 1h\n    group_by: ['job']\n\n- match_re:\n    owner: 'team-(B|C)'\n\n  group_by: ['foo', 'bar']\n  group_wait: 2m\n  receiver: 'notify-BC'\n\n- matchers: [group_by=\"role\"]\n  group_by: ['role']\n\n  routes:\n  - matchers: ['{env=\"testing\"}']\n    receiver: 'notify-testing'\n    routes:\n    - matchers: [wait=\"long\"]\n      group_wait: 2m\n",
    (
        MatchCase(
            "dispatch/route_test.go TestRouteMatchersAndMatch case at line 710",
            {"owner": "team-A"},
            (("notify-A", (), False, 30, 300, 14400),),
        ),
        MatchCase(
            "dispatch/route_test.go TestRouteMatchersAndMatch case at line 727",
            {"owner": "team-A", "env": "unset"},
            (("notify-A", (), False, 30, 300, 14400),),
        ),
        MatchCase(
            "dispatch/route_test.go TestRouteMatchersAndMatch case at line 745",
            {"owner": "team-C"},
            (("notify-BC", ("bar", "foo"), False, 120, 300, 14400),),
        ),
        MatchCase(
            "dispatch/route_test.go TestRouteMatchersAndMatch case at line 762",
            {"owner": "team-A", "env": "testing"},
            (("notify-testing", (), True, 30, 300, 14400),),
        ),
        MatchCase(
            "dispatch/route_test.go TestRouteMatchersAndMatch case at line 780",
            {"owner": "team-A", "env": "production"},
            (
                ("notify-productionA", (), False, 60, 300, 14400),
                ("notify-productionB", ("job",), False, 30, 300, 3600),
            ),
        ),
        MatchCase(
            "dispatch/route_test.go TestRouteMatchersAndMatch case at line 810",
            {"group_by": "role"},
            (("notify-def", ("role",), False, 30, 300, 14400),),
        ),
        MatchCase(
            "dispatch/route_test.go TestRouteMatchersAndMatch case at line 827",
            {"env": "testing", "group_by": "role"},
            (("notify-testing", ("role",), False, 30, 300, 14400),),
        ),
        MatchCase(
            "dispatch/route_test.go TestRouteMatchersAndMatch case at line 845",
            {"env": "testing", "group_by": "role", "wait": "long"},
            (("notify-testing", ("role",), False, 120, 300, 14400),),
        ),
    ),
)

TABLES = (ROUTE_MATCH, ROUTE_MATCHERS, ROUTE_MATCHERS_AND_MATCH)


#: dispatch/route_test.go TestRouteWalk: the receivers of the tree's nodes, depth first.
ROUTE_WALK_UPSTREAM = "dispatch/route_test.go TestRouteWalk line 280"
ROUTE_WALK_TREE = "\nreceiver: 'notify-def'\n\nroutes:\n- match:\n    owner: 'team-A'\n\n  receiver: 'notify-A'\n\n  routes:\n  - match:\n      env: 'testing'\n\n    receiver: 'notify-testing'\n    group_by: [...]\n\n  - match:\n      env: \"production\"\n\n    receiver: 'notify-productionA'\n    group_wait: 1m\n\n    continue: true\n\n  - match_re:\n      env: \"produ.*\"\n      job: \".*\"\n\n    receiver: 'notify-productionB'\n    group_wait: 30s\n    group_interval: 5m\n    repeat_interval: 1h\n    group_by: ['job']\n\n\n- match_re:\n    owner: 'team-(B|C)'\n\n  group_by: ['foo', 'bar']\n  group_wait: 2m\n  receiver: 'notify-BC'\n\n- match:\n    group_by: 'role'\n  group_by: ['role']\n\n  routes:\n  - match:\n      env: 'testing'\n    receiver: 'notify-testing'\n    routes:\n    - match:\n        wait: 'long'\n      group_wait: 2m\n"
ROUTE_WALK = (
    "notify-def",
    "notify-A",
    "notify-testing",
    "notify-productionA",
    "notify-productionB",
    "notify-BC",
    "notify-def",
    "notify-testing",
    "notify-testing",
)

#: dispatch/route_test.go TestInheritParentGroupByAll: the root has no receiver upstream;
#: tokengov requires one, so the test gives it ``receiver: default``.
INHERIT_GROUP_BY_ALL_UPSTREAM = "dispatch/route_test.go TestInheritParentGroupByAll line 365"
INHERIT_GROUP_BY_ALL_TREE = "\nroutes:\n- match:\n    env: 'parent'\n  group_by: ['...']\n\n  routes:\n  - match:\n      env: 'child1'\n\n  - match:\n      env: 'child2'\n    group_by: ['foo']\n"
#: group_by_all of routes[0], routes[0].routes[0] and routes[0].routes[1]
INHERIT_GROUP_BY_ALL = (True, True, False)

#: Upstream route tests tokengov does not express, with why.
SKIPPED = {
    "dispatch/route_test.go TestRouteLabelsLoading line 884": "route labels (``labels:`` on a route) are not part of tokengov's policy",
    "dispatch/route_test.go TestRouteID line 974": (
        "route IDs: tokengov names a route by its path in the policy file "
        "(routes.routes[0]), not by Alertmanager's matcher key"
    ),
    "dispatch/route_test.go TestRouteIndices line 1041": "route indices are Alertmanager's internal numbering (no tokengov counterpart)",
}
