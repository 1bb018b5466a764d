"""The debt engine: events in, findings and ``debt_finding`` alerts out.

Pure code with an injectable clock. ``observe`` keeps the calls of open tasks
(deduplicated by ``event_id``); a task closes on its outcome, after
``task_idle`` of event time without a call, or at ``MAX_TASK_CALLS`` calls, and
its calls become additive tallies in time buckets (see
:mod:`tokengov.streams.debt.detectors.base`). ``flush`` evicts what left the horizon,
judges every (team, workflow, agent, detector) over its horizon (open tasks
included provisionally) and returns the findings due and the alerts.

Time: the horizon ends at the event-time watermark (the latest ``ts`` seen), so
replayed history is judged as it happened; ``now`` (the clock) stamps findings
and paces re-emission. A standing finding is published again at most every
``reemit_interval``, and only when its workflow saw new calls since, with one
exception: a finding whose waste rises across ``alert_usd_per_day`` (or on to
``critical_usd_per_day``) is published at the next flush, so a finding first
judged on its first ``min_calls`` calls, just under the bar, does not hold its
alert back for an hour. A finding whose waste reaches ``alert_usd_per_day``
raises a ``debt_finding`` alert to the owning team (the workflow's cost-profile
team, else the events' team); when it stops firing (judged at re-emission, so a
finding near the bar does not flap), the alert is resolved.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Final, Literal

from tokengov.core.calls import Call, Done
from tokengov.core.contracts import Alert, utcnow
from tokengov.core.policy import Policy
from tokengov.core.pricing import Pricer
from tokengov.core.worker_context import PolicyHolder
from tokengov.streams.debt.detectors import (
    Detector,
    JudgeContext,
    TaskContext,
    Verdict,
    all_detectors,
)
from tokengov.streams.debt.detectors.base import Priced
from tokengov.streams.debt.findings import Finding, finding_alert, make_finding_id
from tokengov.streams.debt.tally import Tally

__all__ = ["MAX_TASK_CALLS", "DebtEngine", "EngineStats", "FlushResult"]

log = logging.getLogger(__name__)

MAX_TASK_CALLS: Final = 2000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

Key = tuple[str, str, str | None, str]  # team, workflow, agent, detector


@dataclass
class FlushResult:
    findings: list[Finding] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)

    def __iter__(self) -> Iterator[list[Finding] | list[Alert]]:
        yield self.findings
        yield self.alerts


@dataclass
class EngineStats:
    """Every event has an ending: counted as observed, duplicate, late or outcome."""

    observed_calls: int = 0
    outcomes: int = 0
    duplicates: int = 0
    late: int = 0
    tasks_closed: int = 0


@dataclass
class _Task:
    team: str
    workflow: str
    calls: list[Priced] = field(default_factory=list)
    last_ts: datetime = _EPOCH


@dataclass
class _Standing:
    emitted_at: datetime
    generation: int
    alert_starts_at: datetime | None = None
    finding: Finding | None = None
    alert_level: int = 0  # 0 below the alert bar, 1 warning, 2 critical (:func:`_alert_level`)


def _alert_level(usd: Decimal, alert_usd: Decimal, critical_usd: Decimal) -> int:
    if alert_usd <= 0 or usd < alert_usd:
        return 0
    return 2 if usd >= critical_usd else 1


def _bucket_start(ts: datetime, size: timedelta) -> datetime:
    return _EPOCH + ((ts - _EPOCH) // size) * size


def _merge_at(buckets: dict[datetime, Tally], start: datetime, tally: Tally) -> None:
    """Add ``tally`` to the bucket at ``start`` (a new bucket holds a copy, never ``tally``)."""
    held = buckets.get(start)
    if held is None:
        held = buckets[start] = Tally()
    held.merge(tally)


def _resolved(finding: Finding, starts_at: datetime, now: datetime) -> Alert:
    return finding_alert(
        finding, severity="info", starts_at=starts_at, status="resolved", ends_at=now
    )


class DebtEngine:
    """``observe(event)`` every event; ``flush(now)`` on a timer."""

    def __init__(
        self,
        policy: Policy | PolicyHolder,
        clock: Callable[[], datetime] = utcnow,
        detectors: Sequence[Detector] | None = None,
    ) -> None:
        self._policy_source = policy
        self._clock = clock
        self.detectors = list(detectors) if detectors is not None else all_detectors()
        self.stats = EngineStats()
        self.watermark: datetime | None = None
        self._seen: dict[str, datetime] = {}
        self._tasks: dict[str, _Task] = {}
        self._buckets: dict[Key, dict[datetime, Tally]] = {}
        self._first_seen: dict[str, datetime] = {}
        self._pricer: Pricer | None = None
        self._generation: dict[str, int] = {}
        self._standing: dict[Key, _Standing] = {}

    @property
    def policy(self) -> Policy:
        source = self._policy_source
        return source.current if isinstance(source, PolicyHolder) else source

    # ------------------------------------------------------------------ input

    def _pricer_of(self, policy: Policy) -> Pricer:
        """The pricer of the catalog in force (a policy reload brings a new catalog)."""
        pricer = self._pricer
        if pricer is None or pricer.catalog is not policy.catalog:
            pricer = self._pricer = Pricer(policy.catalog)
        return pricer

    def observe(self, event: Call | Done) -> bool:
        """Take one decoded event (:mod:`tokengov.core.decoding`). False when it is a duplicate or
        older than the horizon."""
        if event.event_id in self._seen:
            self.stats.duplicates += 1
            return False
        horizon = self.policy.debt.horizon
        if self.watermark is not None and event.ts < self.watermark - horizon:
            self.stats.late += 1
            log.debug("debt: event %s is older than the horizon; not judged", event.event_id)
            return False
        self._seen[event.event_id] = event.ts
        if isinstance(event, Done):
            self.stats.outcomes += 1
            task = self._tasks.pop(event.task_id, None)
            if task is not None:
                self._close(task)
            return True
        self.stats.observed_calls += 1
        if self.watermark is None or event.ts > self.watermark:
            self.watermark = event.ts
        policy = self.policy
        owner = policy.owner_team(event.workflow) or event.team
        task = self._tasks.get(event.task_id)
        if task is None:
            task = self._tasks[event.task_id] = _Task(owner, event.workflow)
        # priced once, here: the tallies (provisional ones too) read the price
        task.calls.append((event, self._pricer_of(policy).priced(event, input_rate=True)))
        task.last_ts = max(task.last_ts, event.ts)
        self._first_seen.setdefault(event.workflow, event.ts)
        self._generation[event.workflow] = self._generation.get(event.workflow, 0) + 1
        if len(task.calls) >= MAX_TASK_CALLS:
            self._close(self._tasks.pop(event.task_id))
        return True

    # ------------------------------------------------------------ task tallies

    def _tallies(self, task: _Task) -> Iterator[tuple[Key, datetime, Tally]]:
        policy = self.policy
        ctx = TaskContext(policy.debt, policy.profile(task.workflow))
        calls = sorted(task.calls, key=lambda cp: (cp[0].ts, cp[0].step, cp[0].attempt))
        for detector in self.detectors:
            start = _bucket_start(task.last_ts, detector.bucket)
            for agent, tally in detector.tally_task(calls, ctx).items():
                yield (task.team, task.workflow, agent, detector.name), start, tally

    def _close(self, task: _Task) -> None:
        self.stats.tasks_closed += 1
        for key, start, tally in self._tallies(task):
            _merge_at(self._buckets.setdefault(key, {}), start, tally)

    # ------------------------------------------------------------------ output

    def flush(self, now: datetime | None = None) -> FlushResult:
        """Judge every key over its horizon; return the findings due and the alerts."""
        now = now or self._clock()
        result = FlushResult()
        if self.watermark is None:
            return result
        policy = self.policy
        debt = policy.debt
        watermark = self.watermark
        self._close_idle(watermark - debt.task_idle)
        self._evict(watermark)

        provisional: dict[Key, dict[datetime, Tally]] = {}
        for task in self._tasks.values():
            for key, start, tally in self._tallies(task):
                _merge_at(provisional.setdefault(key, {}), start, tally)

        by_name = {d.name: d for d in self.detectors}
        keys = set(self._buckets) | set(provisional) | set(self._standing)
        for key in sorted(keys, key=lambda k: (k[0], k[1], k[2] or "", k[3])):
            workflow, name = key[1], key[3]
            detector = by_name.get(name)
            verdict: Verdict | None = None
            if detector is not None:
                merged: dict[datetime, Tally] = {}
                for source in (self._buckets.get(key, {}), provisional.get(key, {})):
                    for start, tally in source.items():
                        _merge_at(merged, start, tally)
                span = self._span(workflow, watermark)
                ctx = JudgeContext(debt, span, policy.profile(workflow))
                verdict = detector.judge(sorted(merged.items(), key=lambda kv: kv[0]), ctx)
            if verdict is not None and verdict.waste_tokens_per_day < debt.min_waste_tokens_per_day:
                verdict = None
            self._decide(key, detector, verdict, watermark, now, result)
        return result

    def _decide(
        self,
        key: Key,
        detector: Detector | None,
        verdict: Verdict | None,
        watermark: datetime,
        now: datetime,
        result: FlushResult,
    ) -> None:
        team, workflow, agent, name = key
        debt = self.policy.debt
        standing = self._standing.get(key)
        if verdict is None or detector is None:
            if standing is not None:
                if standing.alert_starts_at is not None and standing.finding is not None:
                    result.alerts.append(_resolved(standing.finding, standing.alert_starts_at, now))
                del self._standing[key]
            return
        generation = self._generation.get(workflow, 0)
        usd = verdict.waste_usd_per_day
        level = _alert_level(usd, debt.alert_usd_per_day, debt.critical_usd_per_day)
        if (
            standing is not None
            and level <= standing.alert_level
            and (
                now - standing.emitted_at < debt.reemit_interval
                or standing.generation == generation
            )
        ):
            return  # rate-limited; an alert that must fire or escalate never waits (see above)
        finding = Finding(
            finding_id=make_finding_id(name, team, workflow, agent, watermark),
            ts=now,
            area=detector.area,
            team=team,
            workflow=workflow,
            agent=agent,
            evidence=verdict.evidence,
            estimated_waste_tokens_per_day=verdict.waste_tokens_per_day,
            estimated_waste_usd_per_day=verdict.waste_usd_per_day,
            confidence=verdict.confidence,
            better_pattern=detector.better_pattern,
            detector=name,
        )
        result.findings.append(finding)
        starts_at = standing.alert_starts_at if standing else None
        if level:
            starts_at = starts_at or now
            severity: Literal["warning", "critical"] = "critical" if level == 2 else "warning"
            result.alerts.append(finding_alert(finding, severity=severity, starts_at=starts_at))
        elif starts_at is not None and standing is not None and standing.finding is not None:
            result.alerts.append(_resolved(finding, starts_at, now))
            starts_at = None
        self._standing[key] = _Standing(now, generation, starts_at, finding, level)

    def _span(self, workflow: str, watermark: datetime) -> timedelta:
        debt = self.policy.debt
        observed = watermark - self._first_seen.get(workflow, watermark)
        return max(debt.min_span, min(debt.horizon, observed))

    def _close_idle(self, cutoff: datetime) -> None:
        idle = [task_id for task_id, task in self._tasks.items() if task.last_ts < cutoff]
        for task_id in idle:
            self._close(self._tasks.pop(task_id))

    def _evict(self, watermark: datetime) -> None:
        horizon = self.policy.debt.horizon
        self._seen = {eid: ts for eid, ts in self._seen.items() if ts >= watermark - horizon}
        reach = {d.name: (d.retention(self.policy.debt), d.bucket) for d in self.detectors}
        for key in list(self._buckets):
            retention, size = reach.get(key[3], (horizon, timedelta(minutes=1)))
            cutoff = watermark - retention
            kept = {s: t for s, t in self._buckets[key].items() if s + size > cutoff}
            if kept:
                self._buckets[key] = kept
            else:
                del self._buckets[key]

    @property
    def open_tasks(self) -> int:
        return len(self._tasks)
