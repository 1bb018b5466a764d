"""Alertmanager's configuration tests for route trees, receivers and inhibit rules, as data:
``config/config_test.go`` and ``config/testdata/*.yml`` of github.com/prometheus/alertmanager
at commit 68fb2d575.

Each upstream configuration is translated to tokengov's policy shape, keeping its route
tree as it is: ``route:`` is ``routes:``, ``receivers: [{name: X}]`` is ``receivers: {X:
{type: log}}``, and ``version: 1`` heads the file. ``upstream_error`` is Alertmanager's
error; ``error`` is a substring of the problem ``tokengov policy check`` reports for it
(tokengov reports every problem of a file at once, each with its line). ``None``: the
configuration loads. Cases tokengov does not express carry a skip reason.
"""

from __future__ import annotations

from typing import NamedTuple

SKIP_ROUTE_LABELS = "route labels (``labels:`` on a route) are not part of tokengov's policy"
SKIP_TIME_INTERVALS = (
    "ported with the time intervals, in tokengov's policy syntax: "
    "tests/unit/router/test_time_intervals_send_resolved.py::test_config_time_interval_errors"
)
SKIP_NO_ROUTES = (
    "a policy without routes is valid in tokengov: every alert goes to the console "
    "receiver (Alertmanager refuses a configuration without a route)"
)


class ConfigCase(NamedTuple):
    upstream: str
    upstream_error: str | None
    policy: str
    error: str | None
    skip: str | None = None


CASES: tuple[ConfigCase, ...] = (
    ConfigCase(
        "config/config_test.go TestDefaultReceiverExists line 72",
        "root route must specify a default receiver",
        "version: 1\nroutes:\n   group_wait: 30s\n",
        "the root route needs a default receiver",
    ),
    ConfigCase(
        "config/config_test.go TestReceiverNameIsUnique line 89",
        'notification config name "team-X" is not unique',
        "version: 1\nroutes:\n    receiver: team-X\n\nreceivers:\n"
        "  'team-X': {type: log}\n  'team-X': {type: log}\n",
        'duplicate key "team-X"',
    ),
    ConfigCase(
        "config/config_test.go TestReceiverExists line 110",
        'undefined receiver "team-X" used in route',
        "version: 1\nroutes:\n    receiver: team-X\n\nreceivers:\n  'team-Y': {type: log}\n",
        'undefined receiver "team-X" used in route',
    ),
    ConfigCase(
        "config/config_test.go TestReceiverExistsForDeepSubRoute line 130",
        'undefined receiver "nonexistent" used in route',
        "version: 1\nroutes:\n    receiver: team-X\n    routes:\n      - match:\n"
        "          foo: bar\n        routes:\n        - match:\n            foo: bar\n"
        "          receiver: nonexistent\n\nreceivers:\n  'team-X': {type: log}\n",
        'undefined receiver "nonexistent" used in route',
    ),
    ConfigCase(
        "config/config_test.go TestReceiverHasName line 157",
        "missing name in receiver",
        "version: 1\nroutes:\n  receiver: ''\nreceivers:\n  '': {type: log}\n",
        "a receiver needs a name",
    ),
    ConfigCase(
        "config/config_test.go TestGroupByHasNoDuplicatedLabels line 414",
        'duplicated label "cluster" in group_by',
        "version: 1\nroutes:\n  group_by: ['alertname', 'cluster', 'service', 'cluster']\n\n"
        "receivers:\n  'team-X-mails': {type: log}\n",
        'routes.group_by: duplicated label "cluster"',
    ),
    ConfigCase(
        "config/config_test.go TestWildcardGroupByWithOtherGroupByLabels line 434",
        "cannot have wildcard group_by (`...`) and other labels at the same time",
        "version: 1\nroutes:\n  group_by: ['alertname', 'cluster', '...']\n"
        "  receiver: team-X-mails\nreceivers:\n  'team-X-mails': {type: log}\n",
        "cannot have '...' (group by every label) and other labels",
    ),
    ConfigCase(
        "config/config_test.go TestGroupByInvalidLabel line 454",
        'invalid label name "-invalid-" in group_by list',
        "version: 1\nroutes:\n  group_by: ['-invalid-']\n  receiver: team-X-mails\n"
        "receivers:\n  'team-X-mails': {type: log}\n",
        'routes.group_by[0]: invalid label name "-invalid-"',
    ),
    ConfigCase(
        "config/config_test.go TestRouteLabelsInvalidLabelName line 474",
        'invalid label name "-invalid-" in route labels',
        "",
        None,
        SKIP_ROUTE_LABELS,
    ),
    ConfigCase(
        "config/config_test.go TestRouteLabelsValidLabelName line 495",
        None,
        "",
        None,
        SKIP_ROUTE_LABELS,
    ),
    ConfigCase(
        "config/config_test.go TestRootRouteExists line 509",
        "no routes provided",
        "",
        None,
        SKIP_NO_ROUTES,
    ),
    ConfigCase(
        "config/config_test.go TestRootRouteNoMuteTimes line 526",
        "root route must not have any mute time intervals",
        "",
        None,
        SKIP_TIME_INTERVALS,
    ),
    ConfigCase(
        "config/config_test.go TestRootRouteNoActiveTimes line 555",
        "root route must not have any active time intervals",
        "",
        None,
        SKIP_TIME_INTERVALS,
    ),
    ConfigCase(
        "config/config_test.go TestMuteTimeExists line 295",
        "undefined time interval",
        "",
        None,
        SKIP_TIME_INTERVALS,
    ),
    ConfigCase(
        "config/config_test.go TestActiveTimeExists line 320",
        "undefined time interval",
        "",
        None,
        SKIP_TIME_INTERVALS,
    ),
    ConfigCase(
        "config/config_test.go TestRootRouteHasNoMatcher/"
        "Test deprecated matchers on root route not allowed line 590",
        "root route must not have any matchers",
        "version: 1\nroutes:\n  receiver: 'team-X'\n  match:\n    severity: critical\n"
        "receivers:\n  'team-X': {type: log}\n",
        "routes.match: the root route must not have any matchers",
    ),
    ConfigCase(
        "config/config_test.go TestRootRouteHasNoMatcher/"
        "Test matchers not allowed on root route line 601",
        "root route must not have any matchers",
        "version: 1\nroutes:\n  receiver: 'team-X'\n  matchers:\n    - severity=critical\n"
        "receivers:\n  'team-X': {type: log}\n",
        "routes.matchers: the root route must not have any matchers",
    ),
    ConfigCase(
        "config/config_test.go TestContinueErrorInRouteRoot line 628",
        "cannot have continue in root route",
        "version: 1\nroutes:\n    receiver: team-X-mails\n    continue: true\n\n"
        "receivers:\n  'team-X-mails': {type: log}\n",
        "routes.continue: the root route cannot have continue",
    ),
    ConfigCase(
        "config/config_test.go TestGroupIntervalIsGreaterThanZero line 649",
        "group_interval cannot be zero",
        "version: 1\nroutes:\n    receiver: team-X-mails\n    group_interval: 0s\n\n"
        "receivers:\n  'team-X-mails': {type: log}\n",
        "group_interval: must be greater than 0",
    ),
    ConfigCase(
        "config/config_test.go TestRepeatIntervalIsGreaterThanZero line 670",
        "repeat_interval cannot be zero",
        "version: 1\nroutes:\n    receiver: team-X-mails\n    repeat_interval: 0s\n\n"
        "receivers:\n  'team-X-mails': {type: log}\n",
        "repeat_interval: must be greater than 0",
    ),
    ConfigCase(
        "config/config_test.go TestEmptyFieldsAndRegex line 769 (testdata/conf.good.yml: "
        "its route tree and inhibit rule; receivers as log receivers)",
        None,
        "version: 1\nroutes:\n  group_by: ['alertname', 'cluster', 'service']\n"
        "  group_wait: 30s\n  group_interval: 5m\n  repeat_interval: 3h\n"
        "  receiver: team-X-mails\n\n  routes:\n    - match_re:\n"
        "        service: ^(foo1|foo2|baz)$\n      receiver: team-X-mails\n      routes:\n"
        "        - match:\n            severity: critical\n          receiver: team-X-pager\n"
        "    - match:\n        service: files\n      receiver: team-Y-mails\n      routes:\n"
        "        - match:\n            severity: critical\n          receiver: team-Y-pager\n"
        "    - match:\n        service: database\n      receiver: team-DB-pager\n"
        "      group_by: [alertname, cluster, database]\n      routes:\n        - match:\n"
        "            owner2: team-X\n          receiver: team-X-pager\n          continue: true\n"
        "        - match:\n            owner: team-Y\n          receiver: team-Y-pager\n"
        "inhibit_rules:\n  - source_match:\n      severity: 'critical'\n    target_match:\n"
        "      severity: 'warning'\n    equal: ['alertname', 'cluster', 'service']\n"
        "receivers:\n  'team-X-mails': {type: log}\n  'team-X-pager': {type: log}\n"
        "  'team-Y-mails': {type: log}\n  'team-Y-pager': {type: log}\n"
        "  'team-DB-pager': {type: log}\n",
        None,
    ),
    ConfigCase(
        "config/config_test.go TestEmptyFieldsAndRegex line 769 (testdata/conf.empty-fields.yml)",
        None,
        "version: 1\nroutes:\n  group_by: ['alertname', 'cluster', 'service']\n"
        "  receiver: team-X-mails\n  routes:\n    - match_re:\n"
        "        service: ^(foo1|foo2|baz)$\n      receiver: team-X-mails\n"
        "receivers:\n  'team-X-mails': {type: log}\n",
        None,
    ),
    ConfigCase(
        "config/config_test.go TestGroupByAll line 1040 (testdata/conf.group-by-all.yml)",
        None,
        "version: 1\nroutes:\n  group_by: ['...']\n  group_wait: 30s\n  group_interval: 5m\n"
        "  repeat_interval: 3h\n  receiver: team-X\nreceivers:\n  'team-X': {type: log}\n",
        None,
    ),
    ConfigCase(
        "config/config_test.go TestNilRegexp line 1565 (testdata/conf.nil-match_re-route.yml)",
        "invalid_label",
        "version: 1\nroutes:\n  receiver: empty\n  routes:\n    - match_re:\n"
        "        invalid_label:\n      receiver: empty\nreceivers:\n  empty: {type: log}\n",
        "routes.routes[0].match_re.invalid_label",
    ),
    ConfigCase(
        "config/config_test.go TestNilRegexp line 1565 "
        "(testdata/conf.nil-source_match_re-inhibition.yml)",
        "invalid_source_label",
        "version: 1\nroutes:\n  receiver: empty\nreceivers:\n  empty: {type: log}\n"
        "inhibit_rules:\n  - source_match_re:\n      invalid_source_label:\n"
        "    target_match_re:\n      severity: critical\n",
        "inhibit_rules[0].source_match_re.invalid_source_label",
    ),
    ConfigCase(
        "config/config_test.go TestNilRegexp line 1565 "
        "(testdata/conf.nil-target_match_re-inhibition.yml)",
        "invalid_target_label",
        "version: 1\nroutes:\n  receiver: empty\nreceivers:\n  empty: {type: log}\n"
        "inhibit_rules:\n  - source_match:\n      severity: critical\n"
        "    target_match_re:\n      invalid_target_label:\n",
        "inhibit_rules[0].target_match_re.invalid_target_label",
    ),
    ConfigCase(
        "config/config_test.go TestGroupByEmptyOverride line 1704",
        None,
        "version: 1\nroutes:\n  receiver: 'default'\n  group_by: ['alertname', 'cluster']\n"
        "  routes:\n    - group_by: []\n\nreceivers:\n  'default': {type: log}\n",
        None,
    ),
)
