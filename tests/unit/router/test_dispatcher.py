"""The dispatcher's Alertmanager semantics, on a fake clock (no sleeping, no I/O)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tokengov.core.policy import parse_policy
from tokengov.sinks.router.dispatcher import Dispatcher
from tokengov.sinks.router.inhibit import Inhibitor
from tokengov.sinks.router.silences import SilenceStore, new_silence
from tokengov.sinks.router.state import MemoryState
from tokengov.sinks.router.tree import RouteTree

SIMPLE = """
version: 1
teams:
  search: {owner: s@example.com}
  growth: {owner: g@example.com}
receivers:
  console: {type: log}
  hook: {type: webhook, url: "http://127.0.0.1:9/hook"}
  pager: {type: pagerduty, routing_key_env: PD}
routes:
  receiver: console
  group_by: [team, kind]
  group_wait: 10s
  group_interval: 1m
  repeat_interval: 1h
  routes:
    - {match: {severity: critical}, receiver: pager, group_wait: 2s, continue: true}
    - {match: {team: search}, receiver: hook}
"""


@pytest.fixture
def state():
    return MemoryState()


@pytest.fixture
def make_dispatcher(clock, state):
    def make(text: str = SIMPLE, **kwargs) -> Dispatcher:
        return Dispatcher(RouteTree.from_policy(parse_policy(text)), state, clock=clock, **kwargs)

    return make


def deliver_all(dispatcher, notifications):
    for n in notifications:
        dispatcher.delivered(n)
    return notifications


def test_group_wait_then_one_notification_per_group(make_dispatcher, make_alert, clock):
    d = make_dispatcher()
    d.ingest(make_alert(task="t-1", severity="warning"))
    d.ingest(make_alert(task="t-2", severity="warning"))
    d.ingest(make_alert("loop", task="t-3", severity="warning"))
    clock.advance(9.9)
    assert d.flush_due() == []
    assert d.next_deadline() == clock.now + timedelta(seconds=0.1)
    clock.advance(0.1)
    sent = d.flush_due()
    # group_by [team, kind]: the two runaways together, the loop apart; both go to the hook
    assert sorted((n.receiver, len(n.alerts), n.group_labels["kind"]) for n in sent) == [
        ("hook", 1, "loop"),
        ("hook", 2, "runaway"),
    ]
    assert {n.reason for n in sent} == {"first notification"}


def test_group_interval_batches_later_alerts(make_dispatcher, make_alert, clock):
    d = make_dispatcher()
    d.ingest(make_alert(task="t-1", severity="warning"))
    clock.advance(10)
    deliver_all(d, d.flush_due())
    clock.advance(5)
    d.ingest(make_alert(task="t-2", severity="warning"))
    d.ingest(make_alert(task="t-3", severity="warning"))
    clock.advance(54.9)
    assert d.flush_due() == []  # not before group_interval since the last flush
    clock.advance(0.1)
    [n] = d.flush_due()
    assert n.reason == "new alerts in group"
    assert sorted(a.task_id for a in n.alerts) == ["t-1", "t-2", "t-3"]


def test_nothing_new_is_not_sent_again_until_repeat_interval(make_dispatcher, make_alert, clock):
    d = make_dispatcher()
    alert = make_alert(severity="warning")
    d.ingest(alert)
    clock.advance(10)
    deliver_all(d, d.flush_due())
    # Alertmanager resends once the last notification is *older* than repeat_interval,
    # checked at each group_interval flush: not at 60 min exactly, at the 61st minute.
    for _ in range(60):
        clock.advance(60)
        d.ingest(alert)  # the same alert again (a redelivery) changes nothing
        assert d.flush_due() == []
    clock.advance(60)
    [n] = d.flush_due()
    assert n.reason == "repeat interval elapsed"


def test_continue_sends_to_both_routes_each_with_its_timers(make_dispatcher, make_alert, clock):
    d = make_dispatcher()
    d.ingest(make_alert(severity="critical"))
    clock.advance(2)
    [pager] = d.flush_due()
    assert pager.receiver == "pager" and pager.route == "routes.routes[0]"
    clock.advance(8)
    [hook] = d.flush_due()
    assert hook.receiver == "hook" and hook.route == "routes.routes[1]"


def test_alert_older_than_group_wait_flushes_at_once(make_dispatcher, make_alert, clock):
    d = make_dispatcher()
    old = make_alert(severity="warning", starts_at=clock.now - timedelta(minutes=5))
    d.ingest(old)
    [n] = d.flush_due()
    assert n.alerts[0].fingerprint == old.fingerprint


def test_resolve_is_notified_then_the_group_is_gone(make_dispatcher, make_alert, clock):
    d = make_dispatcher()
    alert = make_alert(severity="warning")
    d.ingest(alert)
    clock.advance(10)
    deliver_all(d, d.flush_due())
    clock.advance(30)
    d.ingest(alert.model_copy(update={"status": "resolved", "ends_at": clock.now}))
    clock.advance(30)
    [n] = d.flush_due()
    assert n.reason == "all alerts resolved" and n.status == "resolved"
    assert n.alerts[0].status == "resolved" and n.alerts[0].ends_at is not None
    d.delivered(n)
    assert d.groups == {}
    clock.advance(3600 * 5)
    assert d.flush_due() == []


def test_ends_at_in_the_future_resolves_the_alert_when_it_passes(
    make_dispatcher, make_alert, clock
):
    d = make_dispatcher()
    d.ingest(make_alert(severity="warning", ends_at=clock.now + timedelta(seconds=90)))
    clock.advance(10)
    [first] = deliver_all(d, d.flush_due())
    assert first.alerts[0].status == "firing" and first.alerts[0].ends_at is None
    clock.advance(60)
    assert d.flush_due() == []  # still firing at 70s
    clock.advance(60)
    [n] = d.flush_due()
    assert n.reason == "all alerts resolved"


def test_resolved_alert_never_notified_is_not_news(make_dispatcher, make_alert, clock):
    d = make_dispatcher()
    alert = make_alert(severity="warning")
    d.ingest(alert)
    d.ingest(alert.model_copy(update={"status": "resolved"}))
    clock.advance(10)
    assert d.flush_due() == []
    assert d.groups == {}


def test_dedup_survives_a_restart(make_dispatcher, make_alert, clock, state):
    first = make_dispatcher()
    alert = make_alert(severity="warning")
    first.ingest(alert)
    clock.advance(10)
    deliver_all(first, first.flush_due())
    # A new process on the same state; Kafka redelivers the uncommitted alert.
    second = make_dispatcher()
    assert list(second.groups) == list(first.groups)
    second.ingest(alert)
    for _ in range(10):
        clock.advance(60)
        assert second.flush_due() == []
    second.ingest(alert.model_copy(update={"status": "resolved"}))
    clock.advance(60)
    [n] = second.flush_due()
    assert n.reason == "all alerts resolved"


def test_undelivered_notification_is_pending_after_restart(make_dispatcher, make_alert, clock):
    first = make_dispatcher()
    first.ingest(make_alert(severity="warning"))
    clock.advance(10)
    [n] = first.flush_due()  # handed to delivery, then the process dies
    second = make_dispatcher()
    assert [p.notification_id for p in second.pending()] == [n.notification_id]
    clock.advance(60)
    assert second.flush_due() == []  # in flight: not decided twice
    second.delivered(n)
    clock.advance(60)
    assert second.flush_due() == []


def test_abandoned_notification_is_decided_again_next_interval(make_dispatcher, make_alert, clock):
    d = make_dispatcher()
    d.ingest(make_alert(severity="warning"))
    clock.advance(10)
    [n] = d.flush_due()
    d.abandoned(n)
    clock.advance(60)
    [again] = d.flush_due()
    assert again.reason == "first notification" and again.notification_id != n.notification_id


def test_silence_mutes_matching_alerts_until_it_expires(make_dispatcher, make_alert, clock):
    store = SilenceStore()
    d = make_dispatcher(silences=store)
    silence = new_silence(
        ["task_id=t-1"],
        created_by="alice",
        reason="known incident",
        ends_at=clock.now + timedelta(minutes=5),
        now=clock.now,
    )
    store.apply(silence)
    d.ingest(make_alert(task="t-1", severity="warning"))
    d.ingest(make_alert(task="t-2", severity="warning"))
    clock.advance(10)
    [n] = deliver_all(d, d.flush_due())
    assert [a.task_id for a in n.alerts] == ["t-2"]
    assert d.counters["alerts_silenced"] == 1
    store.apply(silence.expired(clock.advance(60)))
    clock.advance(60)
    [n] = d.flush_due()
    assert sorted(a.task_id for a in n.alerts) == ["t-1", "t-2"]
    assert n.reason == "new alerts in group"


def test_everything_silenced_sends_nothing(make_dispatcher, make_alert, clock):
    store = SilenceStore()
    d = make_dispatcher(silences=store)
    store.apply(
        new_silence(
            ["team=search"],
            created_by="a",
            reason="r",
            ends_at=clock.now + timedelta(hours=1),
            now=clock.now,
        )
    )
    d.ingest(make_alert(severity="warning"))
    clock.advance(10)
    assert d.flush_due() == []


def budget(make_alert, threshold, *, team="search", status="firing", **kw):
    return make_alert(
        "budget_threshold",
        team=team,
        task=None,
        workflow=None,
        severity="warning",
        fingerprint=f"budget_threshold|team:{team}:day|{threshold}",
        labels={"budget": f"team:{team}:day", "threshold": str(threshold)},
        evidence={"spent_usd": "100", "limit_usd": "200", "threshold": threshold},
        status=status,
        **kw,
    )


def test_breached_budget_inhibits_lower_thresholds_and_task_alerts(
    make_dispatcher, make_alert, clock
):
    d = make_dispatcher(inhibitor=Inhibitor())
    d.ingest(budget(make_alert, 0.5))
    d.ingest(budget(make_alert, 0.8))
    d.ingest(make_alert("runaway", task="t-1", severity="warning"))
    d.ingest(make_alert("loop", task="t-2", severity="warning"))
    d.ingest(make_alert("runaway", team="growth", task="t-9", severity="warning"))  # other team
    d.ingest(budget(make_alert, 1.0))
    clock.advance(10)
    sent = d.flush_due()
    shown = sorted(
        (n.group_labels["team"], a.kind, a.labels.get("threshold", ""))
        for n in sent
        for a in n.alerts
    )
    assert shown == [("growth", "runaway", ""), ("search", "budget_threshold", "1.0")]
    assert d.counters["alerts_inhibited"] == 4


def test_inhibition_lifts_when_the_source_resolves(make_dispatcher, make_alert, clock):
    d = make_dispatcher(inhibitor=Inhibitor())
    breach = budget(make_alert, 1.0)
    d.ingest(breach)
    d.ingest(make_alert("runaway", task="t-1", severity="warning"))
    clock.advance(10)
    deliver_all(d, d.flush_due())
    d.ingest(breach.model_copy(update={"status": "resolved"}))
    clock.advance(60)
    sent = d.flush_due()
    kinds = sorted((a.kind, a.status) for n in sent for a in n.alerts)
    assert kinds == [("budget_threshold", "resolved"), ("runaway", "firing")]


def test_workflow_budget_inhibits_only_its_workflow(make_dispatcher, make_alert, clock):
    d = make_dispatcher(inhibitor=Inhibitor())
    d.ingest(
        make_alert(
            "budget_threshold",
            task=None,
            workflow="support-triage",
            severity="warning",
            fingerprint="b|wf",
            labels={"budget": "workflow:support-triage:month", "threshold": "100%"},
        )
    )
    d.ingest(make_alert("runaway", task="t-1", workflow="support-triage", severity="warning"))
    d.ingest(make_alert("runaway", task="t-2", workflow="doc-qa", severity="warning"))
    clock.advance(10)
    tasks = sorted(a.task_id or "-" for n in d.flush_due() for a in n.alerts)
    assert tasks == ["-", "t-2"]


def test_stale_alerts_without_end_expire(make_dispatcher, make_alert, clock):
    d = make_dispatcher(max_alert_age=timedelta(hours=2))
    d.ingest(make_alert(severity="warning"))
    clock.advance(10)
    deliver_all(d, d.flush_due())
    clock.advance(3 * 3600)
    assert d.flush_due() == []
    assert d.groups == {} and d.counters["alerts_expired_stale"] == 1


def test_refiring_after_resolve_is_a_first_notification(make_dispatcher, make_alert, clock):
    d = make_dispatcher()
    alert = make_alert(severity="warning")
    d.ingest(alert)
    clock.advance(10)
    deliver_all(d, d.flush_due())
    d.ingest(alert.model_copy(update={"status": "resolved"}))
    clock.advance(60)
    deliver_all(d, d.flush_due())
    d.ingest(make_alert(severity="warning"))  # the same fingerprint fires again
    clock.advance(10)
    [n] = d.flush_due()
    assert n.reason == "first notification"
