"""Routes' mute/active time intervals and receivers' ``send_resolved`` in the dispatcher
(fake clock; the conftest's T0 is Sunday 2026-11-29 05:00 UTC)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tokengov.core.errors import PolicyError
from tokengov.core.policy import parse_policy
from tokengov.sinks.router.dispatcher import Dispatcher
from tokengov.sinks.router.state import MemoryState
from tokengov.sinks.router.tree import RouteTree

TIMED = """
version: 1
teams:
  search: {owner: s@example.com}
receivers:
  console: {type: log}
  hook: {type: webhook, url: "http://127.0.0.1:9/hook"}
  office-hook: {type: webhook, url: "http://127.0.0.1:9/office"}
time_intervals:
  - name: weekend
    time_intervals: [{weekdays: [saturday, sunday]}]
  - name: office
    time_intervals:
      - times: [{start_time: "09:00", end_time: "17:00"}]
        weekdays: ["monday:friday"]
        location: Europe/Berlin
routes:
  receiver: console
  group_by: [team, kind]
  group_wait: 10s
  group_interval: 1m
  repeat_interval: 1h
  routes:
    - match: {team: search}
      receiver: hook
      mute_time_intervals: [weekend]
      continue: true
      routes:
        - {match: {kind: loop}, receiver: hook}
    - match: {team: search}
      receiver: office-hook
      active_time_intervals: [office]
"""


def _dispatcher(text: str, clock) -> Dispatcher:
    return Dispatcher(RouteTree.from_policy(parse_policy(text)), MemoryState(), clock=clock)


def test_mute_time_interval_holds_the_group_until_it_ends(make_alert, clock):
    d = _dispatcher(TIMED, clock)
    d.ingest(make_alert(severity="warning"))
    clock.advance(10)
    # Sunday: the weekend mutes routes.routes[0]; Sunday 06:00 in Berlin is not office time
    assert d.flush_due() == []
    assert d.counters["flushes_time_muted"] == 2
    group = next(g for g in d.groups.values() if g.receiver == "hook")
    assert d.state.nflog_get(group.key, "hook") is None  # not marked notified
    clock.now = datetime(2026, 11, 30, 0, 0, tzinfo=UTC)  # Monday, 01:00 in Berlin
    [n] = d.flush_due()
    assert (n.receiver, n.reason) == ("hook", "first notification")


def test_active_time_interval_sends_only_inside_it(make_alert, clock):
    clock.now = datetime(2026, 11, 30, 7, 59, tzinfo=UTC)  # Monday 08:59 in Berlin (CET)
    d = _dispatcher(TIMED, clock)
    d.ingest(make_alert(severity="warning"))
    clock.advance(10)
    assert [n.receiver for n in d.flush_due()] == ["hook"]
    clock.now = datetime(2026, 11, 30, 8, 0, 10, tzinfo=UTC)  # 09:00 in Berlin
    assert [n.receiver for n in d.flush_due()] == ["office-hook"]


def test_time_intervals_are_not_inherited(make_alert, clock):
    """dispatch/route.go sets a node's intervals from its own config only: the loop child
    of the weekend-muted route is not muted."""
    d = _dispatcher(TIMED, clock)
    d.ingest(make_alert("loop", severity="warning"))
    clock.advance(10)
    [n] = d.flush_due()
    assert (n.route, n.receiver) == ("routes.routes[0].routes[0]", "hook")


def test_a_resolution_inside_a_mute_is_dropped_as_alertmanager_does(make_alert, clock):
    clock.now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)  # Friday
    d = _dispatcher(TIMED, clock)
    alert = make_alert(severity="warning")
    d.ingest(alert)
    clock.advance(10)
    for n in d.flush_due():
        d.delivered(n)
    clock.now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)  # Saturday: muted
    d.ingest(alert.model_copy(update={"status": "resolved", "ends_at": clock.now}))
    assert [n.receiver for n in d.flush_due()] == []
    assert not any(g.receiver == "hook" for g in d.groups.values())


POLICY_ERRORS = """
version: 1
receivers: {console: {type: log}}
time_intervals:
  - name: night
    time_intervals: [{times: [{start_time: "00:00", end_time: "06:00"}]}]
  - name: night
    time_intervals: [{weekdays: ["friday:monday"]}]
routes:
  receiver: console
  mute_time_intervals: [night]
  routes:
    - receiver: console
      active_time_intervals: [office]
"""


def test_policy_check_refuses_bad_time_intervals_with_path_and_line():
    with pytest.raises(PolicyError) as caught:
        parse_policy(POLICY_ERRORS)
    problems = caught.value.problems
    assert "line 8: time_intervals[1].time_intervals[0].weekdays[0]: start day cannot be " in (
        "\n".join(problems)
    )
    assert 'line 7: time_intervals[1].name: time interval "night" is not unique' in problems
    assert (
        "line 11: routes.mute_time_intervals: root route must not have any mute time intervals"
    ) in problems
    assert (
        'line 14: routes.routes[0].active_time_intervals[0]: undefined time interval "office" '
        "used in route"
    ) in problems


#: config/config_test.go@68fb2d575, the time-interval cases, in tokengov's policy syntax
#: (``route`` is ``routes``, receivers a mapping); the message is upstream's ``expected``.
CONFIG_CASES: list[tuple[str, str, str]] = [
    (
        "TestMuteTimeExists",
        "routes:\n  receiver: team-Y\n  routes:\n    - match: {severity: critical}\n"
        "      mute_time_intervals: [business_hours]\n",
        'undefined time interval "business_hours" used in route',
    ),
    (
        "TestActiveTimeExists",
        "routes:\n  receiver: team-Y\n  routes:\n    - match: {severity: critical}\n"
        "      active_time_intervals: [business_hours]\n",
        'undefined time interval "business_hours" used in route',
    ),
    (
        "TestTimeIntervalHasName",
        "time_intervals:\n  - name:\n    time_intervals:\n"
        "      - times: [{start_time: '09:00', end_time: '17:00'}]\n"
        "routes: {receiver: team-Y}\n",
        "missing name in time interval",
    ),
    (
        "TestMuteTimeNoDuplicates (with time_intervals: upstream's message for that list)",
        "time_intervals:\n"
        "  - {name: duplicate, time_intervals: [{times: [{start_time: '09:00', end_time: '17:00'}]}]}\n"
        "  - {name: duplicate, time_intervals: [{times: [{start_time: '10:00', end_time: '14:00'}]}]}\n"
        "routes: {receiver: team-Y}\n",
        'time interval "duplicate" is not unique',
    ),
    (
        "TestRootRouteNoMuteTimes",
        "time_intervals:\n  - {name: my_mute_time, time_intervals: [{weekdays: [monday]}]}\n"
        "routes: {receiver: team-Y, mute_time_intervals: [my_mute_time]}\n",
        "root route must not have any mute time intervals",
    ),
    (
        "TestRootRouteNoActiveTimes",
        "time_intervals:\n  - {name: my_active_time, time_intervals: [{weekdays: [monday]}]}\n"
        "routes: {receiver: team-Y, active_time_intervals: [my_active_time]}\n",
        "root route must not have any active time intervals",
    ),
]


@pytest.mark.parametrize(
    ("case", "body", "expected"), CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES]
)
def test_config_time_interval_errors(case: str, body: str, expected: str):
    text = "version: 1\nreceivers: {team-Y: {type: log}}\n" + body
    with pytest.raises(PolicyError) as caught:
        parse_policy(text)
    assert expected in str(caught.value), f"config/config_test.go@68fb2d575 {case}"


# ------------------------------------------------------------------ send_resolved

RESOLVED = """
version: 1
teams:
  search: {owner: s@example.com}
receivers:
  console: {type: log}
  hook: {type: webhook, url: "http://127.0.0.1:9/hook"}
  quiet: {type: webhook, url: "http://127.0.0.1:9/quiet", send_resolved: false}
routes:
  receiver: console
  group_by: [team]
  group_wait: 10s
  group_interval: 1m
  repeat_interval: 1h
  routes:
    - {match: {team: search}, receiver: hook, continue: true}
    - {match: {team: search}, receiver: quiet}
"""


def _by_receiver(notifications):
    return {n.receiver: n for n in notifications}


def test_send_resolved_defaults_are_alertmanagers():
    """config/notifiers.go (DefaultEmailConfig, DefaultSlackConfig: false),
    notify/webhook/config.go, notify/pagerduty/config.go (true) at 68fb2d575."""
    policy = parse_policy("""
version: 1
receivers:
  w: {type: webhook, url: "http://127.0.0.1:9/"}
  p: {type: pagerduty, routing_key_env: PD}
  s: {type: slack, url_env: SLACK}
  e: {type: email, to: [a@example.com]}
  l: {type: log}
routes: {receiver: l}
""")
    assert {name: r.send_resolved for name, r in policy.receivers.items()} == {
        "w": True,
        "p": True,
        "s": False,
        "e": False,
        "l": True,
    }


def test_receiver_without_send_resolved_is_not_told_of_resolutions(make_alert, clock):
    d = _dispatcher(RESOLVED, clock)
    one, two = make_alert(task="t-1"), make_alert(task="t-2")
    d.ingest(one)
    d.ingest(two)
    clock.advance(10)
    first = _by_receiver(d.flush_due())
    assert set(first) == {"hook", "quiet"}
    for n in first.values():
        d.delivered(n)
    # one resolves, the other still fires: news for hook only
    clock.advance(30)
    d.ingest(one.model_copy(update={"status": "resolved", "ends_at": clock.now}))
    clock.advance(30)
    sent = _by_receiver(d.flush_due())
    assert set(sent) == {"hook"} and sent["hook"].reason == "some alerts resolved"
    d.delivered(sent["hook"])
    # a new alert fires: quiet hears of it, without the resolved one
    three = make_alert(task="t-3")
    d.ingest(three)
    d.ingest(one.model_copy(update={"status": "resolved", "ends_at": clock.now}))
    clock.advance(60)
    sent = _by_receiver(d.flush_due())
    assert sent["quiet"].reason == "new alerts in group"
    assert sorted(a.task_id or "" for a in sent["quiet"].alerts) == ["t-2", "t-3"]
    assert all(a.status == "firing" for a in sent["quiet"].alerts)
    for n in sent.values():
        d.delivered(n)
    # everything resolves: hook is told, quiet is recorded as notified without a message
    d.ingest(two.model_copy(update={"status": "resolved", "ends_at": clock.now}))
    d.ingest(three.model_copy(update={"status": "resolved", "ends_at": clock.now}))
    clock.advance(60)
    sent = _by_receiver(d.flush_due())
    assert set(sent) == {"hook"} and sent["hook"].reason == "all alerts resolved"
    quiet_key = sent["hook"].group_key.replace("routes.routes[0]>hook", "routes.routes[1]>quiet")
    entry = d.state.nflog_get(quiet_key, "quiet")
    assert entry is not None and entry.firing == frozenset()
    assert not any(g.receiver == "quiet" for g in d.groups.values())
    # firing again later is a first notification for quiet (Alertmanager's DedupStage)
    clock.advance(60)
    d.ingest(make_alert(task="t-1", starts_at=clock.now))
    clock.advance(10)
    again = _by_receiver(d.flush_due())
    assert again["quiet"].reason == "first notification"
