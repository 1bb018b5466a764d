"""The engine: dedupe, lateness, per-day rates, re-emission, alerts, deterministic ids."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from tokengov.core.calls import from_model
from tokengov.core.policy import parse_policy
from tokengov.core.worker_context import PolicyHolder
from tokengov.streams.debt.detectors import MemoryReplay
from tokengov.streams.debt.engine import DebtEngine, DebtTallies
from tokengov.streams.debt.findings import Finding


def _replay_tasks(kit, n, memory=6000, start=None, span=timedelta(minutes=30)):
    return kit.tasks(
        n,
        lambda i, t0: (
            kit.call(
                t0 + timedelta(seconds=s),
                task=f"m{i}-{t0.isoformat()}",
                step=s,
                memory=memory,
                workflow="concierge",
                team="support",
            )
            for s in range(4)
        ),
        start=start or kit.T0,
        span=span,
    )


def _alerting_policy():
    """An expensive model (so the replay's waste crosses the $50/day alert bar) and a
    workflow owned by its cost profile's team."""
    return parse_policy(
        "version: 1\nteams: {support: {owner: s@example.com}, concierge-team: {owner: c@x.com}}\n"
        "prices: {gpt-4.1-mini: {input: 40, output: 160}}\n"
        "cost_profiles: {concierge: {team: concierge-team}}\n"
        "debt: {alert_usd_per_day: 50, critical_usd_per_day: 100000}\n"
    )


def _engine(policy, kit, **kw):
    clock = {"now": kit.T0}
    engine = DebtEngine(policy, clock=lambda: clock["now"], detectors=[MemoryReplay()], **kw)
    return engine, clock


def test_duplicates_count_once(policy, kit) -> None:
    events = _replay_tasks(kit, 20)
    once, _ = _engine(policy, kit)
    twice, _ = _engine(policy, kit)
    for e in events:
        once.observe(from_model(e))
        twice.observe(from_model(e))
        assert twice.observe(from_model(e)) is False
    assert twice.stats.duplicates == len(events)
    a, b = once.flush(kit.T0).findings, twice.flush(kit.T0).findings
    assert a == b and a  # same ids, same numbers


def test_waste_per_day_extrapolates_the_observed_span(policy, kit) -> None:
    events = _replay_tasks(kit, 20, span=timedelta(minutes=30))
    engine, _ = _engine(policy, kit)
    for e in events:
        engine.observe(from_model(e))
    [finding] = engine.flush(kit.T0).findings
    waste = 20 * 4 * (6000 - policy.debt.memory_budget_tokens)
    span = max(e.ts for e in events) - min(e.ts for e in events)
    assert finding.estimated_waste_tokens_per_day == int(waste * timedelta(days=1) / span)
    usd = (
        Decimal(waste)
        * Decimal("0.40")
        / 1_000_000
        * Decimal(86400)
        / Decimal(str(span.total_seconds()))
    )
    assert abs(finding.estimated_waste_usd_per_day - usd) < Decimal("0.00001")


def test_events_older_than_the_horizon_are_not_judged(policy, kit) -> None:
    engine, _ = _engine(policy, kit)
    engine.observe(from_model(kit.call(kit.T0 + timedelta(hours=3), task="late-anchor", memory=10)))
    for e in _replay_tasks(kit, 20):
        assert engine.observe(from_model(e)) is False
    assert engine.stats.late == 80
    assert engine.flush(kit.T0).findings == []


def test_open_tasks_are_judged_without_an_outcome(policy, kit) -> None:
    events = [e for e in _replay_tasks(kit, 20) if e.kind == "call"]
    engine, _ = _engine(policy, kit)
    for e in events:
        engine.observe(from_model(e))
    assert engine.open_tasks == 20
    assert len(engine.flush(kit.T0).findings) == 1


def test_standing_finding_republished_only_after_interval_and_new_calls(policy, kit) -> None:
    engine, clock = _engine(policy, kit)
    for e in _replay_tasks(kit, 20):
        engine.observe(from_model(e))
    assert len(engine.flush().findings) == 1
    clock["now"] += timedelta(minutes=5)
    assert engine.flush().findings == []  # too soon
    clock["now"] += timedelta(hours=2)
    assert engine.flush().findings == []  # no new calls since
    for e in _replay_tasks(kit, 5, start=kit.T0 + timedelta(minutes=31), span=timedelta(minutes=5)):
        engine.observe(from_model(e))
    assert len(engine.flush().findings) == 1


def test_a_finding_that_crosses_the_alert_bar_alerts_at_the_next_flush(kit) -> None:
    """First judged on its first calls, just under the bar: when more calls push it over,
    the alert fires at the next flush, not a reemit_interval (an hour) later."""
    policy = _alerting_policy()
    engine, clock = _engine(policy, kit)
    for e in _replay_tasks(kit, 20, memory=1200):
        engine.observe(from_model(e))
    [first], alerts = engine.flush()
    assert alerts == [] and first.estimated_waste_usd_per_day < policy.debt.alert_usd_per_day
    clock["now"] += timedelta(minutes=5)  # well inside reemit_interval (1 h)
    assert policy.debt.reemit_interval == timedelta(hours=1)
    for e in _replay_tasks(
        kit, 20, start=kit.T0 + timedelta(minutes=31), span=timedelta(minutes=5)
    ):
        engine.observe(from_model(e))
    [finding], [alert] = engine.flush()
    assert finding.estimated_waste_usd_per_day >= policy.debt.alert_usd_per_day
    assert (alert.status, alert.severity) == ("firing", "warning")
    assert alert.evidence["finding_id"] == finding.finding_id != first.finding_id
    assert alert.starts_at == clock["now"]
    # still firing at the same level: the rate limit holds again
    clock["now"] += timedelta(minutes=5)
    for e in _replay_tasks(kit, 2, start=kit.T0 + timedelta(minutes=37), span=timedelta(minutes=1)):
        engine.observe(from_model(e))
    assert engine.flush().findings == []


def test_alert_fires_to_the_owner_and_resolves_when_the_waste_stops(kit) -> None:
    policy = _alerting_policy()
    engine, clock = _engine(policy, kit)
    for e in _replay_tasks(kit, 20):
        engine.observe(from_model(e))
    result = engine.flush()
    [finding], [alert] = result.findings, result.alerts
    assert alert.kind == "debt_finding" and alert.status == "firing"
    assert alert.team == "concierge-team" == finding.team  # the cost profile's owner
    assert alert.severity == "warning"
    assert alert.fingerprint == "debt_finding|concierge-team|concierge|memory_replay|agent"
    assert alert.evidence["finding_id"] == finding.finding_id
    # the workflow is redesigned: an hour of distilled memory pushes the waste out
    clock["now"] += timedelta(hours=2)
    for e in _replay_tasks(kit, 20, memory=400, start=kit.T0 + timedelta(hours=1, minutes=40)):
        engine.observe(from_model(e))
    findings, alerts = engine.flush()
    assert findings == []
    assert [(a.status, a.fingerprint) for a in alerts] == [("resolved", alert.fingerprint)]
    assert alerts[0].starts_at == alert.starts_at and alerts[0].ends_at == clock["now"]


def test_alert_resolves_while_a_smaller_finding_stands(kit) -> None:
    policy = _alerting_policy()
    engine, clock = _engine(policy, kit)
    for e in _replay_tasks(kit, 20):
        engine.observe(from_model(e))
    [alert] = engine.flush().alerts
    assert alert.status == "firing"
    # memory just over the budget: still replayed, but its waste is now below the alert bar
    clock["now"] += timedelta(hours=2)
    for e in _replay_tasks(kit, 20, memory=1200, start=kit.T0 + timedelta(hours=1, minutes=40)):
        engine.observe(from_model(e))
    [finding], alerts = engine.flush()
    assert finding.estimated_waste_usd_per_day < policy.debt.alert_usd_per_day
    assert [(a.status, a.fingerprint) for a in alerts] == [("resolved", alert.fingerprint)]
    assert alerts[0].starts_at == alert.starts_at and alerts[0].ends_at == clock["now"]
    assert alerts[0].evidence["finding_id"] == finding.finding_id
    # once resolved, the standing finding raises nothing more
    clock["now"] += timedelta(hours=2)
    for e in _replay_tasks(kit, 20, memory=1200, start=kit.T0 + timedelta(hours=3, minutes=40)):
        engine.observe(from_model(e))
    result = engine.flush()
    assert len(result.findings) == 1 and result.alerts == []


def test_no_alert_below_the_threshold(policy, kit) -> None:
    engine, _ = _engine(policy, kit)  # fleet policy: $0.40/M, default alert at $5/day
    for e in _replay_tasks(kit, 5):
        engine.observe(from_model(e))
    result = engine.flush()
    assert len(result.findings) == 1 and result.alerts == []


def test_policy_holder_and_json_round_trip(policy, kit) -> None:
    engine = DebtEngine(PolicyHolder(policy), clock=lambda: kit.T0, detectors=[MemoryReplay()])
    for e in _replay_tasks(kit, 20):
        engine.observe(from_model(e))
    [finding] = engine.flush().findings
    assert Finding.model_validate_json(finding.model_dump_json()) == finding
    assert finding.ts == kit.T0 and finding.schema_version == 1


def test_flush_with_nothing_observed(policy) -> None:
    assert DebtEngine(policy).flush().findings == []


def test_take_does_not_fold_open_tasks_into_the_closed_buckets(policy, kit) -> None:
    """A task still open at a take is in that share provisionally; when it closes it is
    counted once (a take used to merge the open tasks' tallies into the partition's own
    closed buckets, so every take while a task was open counted its calls again)."""
    closed = [
        kit.call(kit.T0 + timedelta(seconds=s), task="closed", step=s, memory=10) for s in range(3)
    ]
    open_task = [
        kit.call(kit.T0 + timedelta(seconds=10 + s), task="open", step=s, memory=10)
        for s in range(4)
    ]
    finished = kit.outcome(kit.T0 + timedelta(seconds=20), task="open")
    taking, once = DebtTallies(policy), DebtTallies(policy)
    for e in [*closed, kit.outcome(kit.T0 + timedelta(seconds=5), task="closed"), *open_task]:
        taking.observe(from_model(e))
        once.observe(from_model(e))
    for i in range(3):  # the open task is in each of these shares, provisionally
        [share] = taking.take()
        assert _calls(share) == 7 + i
        taking.observe(from_model(kit.call(kit.T0 + timedelta(seconds=15), task="x", memory=0)))
        once.observe(from_model(kit.call(kit.T0 + timedelta(seconds=15), task="x", memory=0)))
    taking.observe(from_model(finished))
    once.observe(from_model(finished))
    assert _calls(taking.take()[0]) == _calls(once.take()[0]) == 10


def _calls(share) -> float:
    return sum(
        t.get("calls")
        for key, held in share.buckets.items()
        if key[3] == "memory_replay"
        for t in held.values()
    )
