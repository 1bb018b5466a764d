"""The debt engine in two stages: per-partition tallies, then a judge per workflow.

Pure code with an injectable clock. Stage 1, :class:`DebtTallies` (one per partition of
``tokengov.events``): ``observe`` keeps the calls of open tasks (deduplicated by
``event_id``); a task closes on its outcome, after ``task_idle`` of event time without a
call, or at ``MAX_TASK_CALLS`` calls, and its calls become additive tallies in time
buckets (see :mod:`tokengov.streams.debt.detectors.base`). ``take`` evicts what left the
horizon and returns, for every workflow that changed, its :class:`WorkflowTallies`: the
partition's closed buckets plus the open tasks' tallies (provisional), its watermark,
first call and call count. Tallies add up, so stage 2, :class:`DebtJudge` (keyed by
workflow), sums the latest :class:`WorkflowTallies` of every partition and judges every
(team, workflow, agent, detector) over its horizon: the findings do not depend on how the
partitions are spread over workers. :class:`DebtEngine` runs both in one process.

Time: a workflow's horizon ends at its watermark (the latest ``ts`` of the partitions
that hold its calls), so replayed history is judged as it happened; ``now`` (the clock)
stamps findings and paces re-emission. A standing finding is published again at most every
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
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from operator import attrgetter
from typing import Any, Final, Literal

from tokengov.core.calls import Call, Done
from tokengov.core.contracts import Alert, utcnow
from tokengov.core.policy import Policy
from tokengov.core.pricing import Pricer
from tokengov.core.worker_context import PolicyHolder
from tokengov.streams.core import codec
from tokengov.streams.debt import wire
from tokengov.streams.debt.columns import InputPrices, TaskBatch, in_order
from tokengov.streams.debt.detectors import (
    Detector,
    JudgeContext,
    TaskContext,
    Verdict,
    all_detectors,
)
from tokengov.streams.debt.findings import Finding, finding_alert, make_finding_id
from tokengov.streams.debt.tally import Buckets, Key, Tally, WorkflowTallies

__all__ = [
    "MAX_TASK_CALLS",
    "TALLY_CALLS",
    "DebtEngine",
    "DebtJudge",
    "DebtTallies",
    "EngineStats",
    "FlushResult",
    "WorkflowTallies",
]

log = logging.getLogger(__name__)

MAX_TASK_CALLS: Final = 2000
#: Closed tasks wait to be tallied together until they hold this many calls (or until the
#: next :meth:`DebtTallies.take`, handover or policy change): the detectors' per-batch and
#: per-agent work is then shared by more calls (:meth:`DebtTallies._tally_closed`).
TALLY_CALLS: Final = 2000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_NEVER: Final = datetime.min.replace(tzinfo=UTC)  # before every ts
_MINUTE: Final = timedelta(minutes=1)


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


class _Task:
    """An open task: its calls as decoded (priced and sorted when it closes), the latest
    ``ts`` among those counted, and how many are counted in the workflow's facts."""

    __slots__ = ("calls", "counted", "last_ts", "mixed", "stamp", "team", "workflow")

    def __init__(
        self, team: str, workflow: str, calls: list[Call] | None = None, last_ts: datetime = _EPOCH
    ) -> None:
        self.team = team
        self.workflow = workflow
        self.calls: list[Call] = calls if calls is not None else []
        self.last_ts = last_ts
        self.counted = len(self.calls)
        self.stamp = 0  # the batch that last touched it (:meth:`DebtTallies.observe_all`)
        self.mixed = False  # a call names another workflow than the task's first


class _Contexts(dict[str, TaskContext]):
    """The detectors' :class:`TaskContext` per workflow, made once for ``policy``."""

    __slots__ = ("policy",)

    def __init__(self, policy: Policy | None) -> None:
        super().__init__()
        self.policy = policy


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


#: A call's ``ts`` (``max(map(_ts_of, calls))``: the latest, read in C).
_ts_of: Final[Callable[[Call], datetime]] = attrgetter("ts")


#: What the tallies a detector was handed held before (:func:`_restore`), by agent: the tally
#: and its contents (counts, waste tokens, waste USD, names or None for none), or None when
#: it was made then. (A copy per tally a batch touches: ~0.3 CPU µs/event over the bench mix.)
Saved = dict[
    str | None, tuple[Tally, tuple[dict[str, float], int, Decimal, set[str] | None] | None]
]

#: Where a task's sums go: (team, workflow, detector, bucket start, what to save them in) →
#: the tally of an agent.
TallyAt = Callable[[str, str, str, datetime, Saved], Callable[[str | None], Tally]]


def _contents(tally: Tally) -> tuple[dict[str, float], int, Decimal, set[str] | None]:
    names = tally.names
    return dict(tally.counts), tally.waste_tokens, tally.waste_usd, set(names) if names else None


def _closed(buckets: Buckets) -> TallyAt:
    """A closed task's sums go into the partition's own buckets."""

    def at(
        team: str, workflow: str, name: str, start: datetime, saved: Saved
    ) -> Callable[[str | None], Tally]:
        def tally_for(agent: str | None) -> Tally:
            key = (team, workflow, agent, name)
            held = buckets.get(key)
            if held is None:
                held = buckets[key] = {}
            tally = held.get(start)
            if tally is None:
                tally = held[start] = Tally()
                saved[agent] = (tally, None)
            elif agent not in saved:
                saved[agent] = (tally, _contents(tally))
            return tally

        return tally_for

    return at


def _provisional(buckets: Buckets, copied: set[tuple[Key, datetime]]) -> TallyAt:
    """An open task's sums go into a share: a copy of the closed bucket (made on the first
    touch of each (key, start)), never the partition's own."""

    def at(
        team: str, workflow: str, name: str, start: datetime, saved: Saved
    ) -> Callable[[str | None], Tally]:
        def tally_for(agent: str | None) -> Tally:
            key = (team, workflow, agent, name)
            held = buckets.get(key)
            if held is None:
                held = buckets[key] = {}
            tally = held.get(start)
            if (key, start) not in copied:
                copied.add((key, start))
                copy = Tally()
                if tally is not None:
                    copy.merge(tally)
                tally = held[start] = copy
            elif tally is None:
                tally = held[start] = Tally()
            if agent not in saved:
                saved[agent] = (tally, _contents(tally))
            return tally

        return tally_for

    return at


def _restore(saved: Saved) -> None:
    """Put back what the tallies in ``saved`` held (empty, those made since)."""
    for tally, contents in saved.values():
        counts, waste_tokens, waste_usd, names = (
            contents if contents is not None else ({}, 0, Decimal(), set())
        )
        tally.counts, tally.waste_tokens, tally.waste_usd = counts, waste_tokens, waste_usd
        tally.names = names if names is not None else set()


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


def _key_order(key: Key) -> tuple[str, str, str, str]:
    return (key[0], key[1], key[2] or "", key[3])


class _PolicySource:
    def __init__(self, policy: Policy | PolicyHolder, detectors: Sequence[Detector] | None):
        self._policy_source = policy
        self.detectors = list(detectors) if detectors is not None else all_detectors()

    @property
    def policy(self) -> Policy:
        source = self._policy_source
        return source.current if isinstance(source, PolicyHolder) else source


class DebtTallies(_PolicySource):
    """Stage 1 for one partition of the events: ``observe`` every event, ``take`` on a timer."""

    def __init__(
        self, policy: Policy | PolicyHolder, detectors: Sequence[Detector] | None = None
    ) -> None:
        super().__init__(policy, detectors)
        self.stats = EngineStats()
        self.watermark: datetime | None = None
        self._seen: dict[str, datetime] = {}
        # ``_seen``'s ids by the minute of ts
        self._seen_minutes: defaultdict[int, list[str]] = defaultdict(list)
        self._tasks: dict[str, _Task] = {}
        self._buckets: Buckets = {}
        self._first_seen: dict[str, datetime] = {}
        self._last_seen: dict[str, datetime] = {}
        self._calls: dict[str, int] = {}
        self._dirty: set[str] = set()  # workflows whose tallies changed since the last take
        self._prices: InputPrices | None = None
        self._contexts = _Contexts(None)  # the detectors' context per workflow (``_tally_all``)
        self._bucket_spans: dict[timedelta, tuple[datetime, datetime]] = {}
        self._stamp = 0  # batches observed
        self._closing: list[_Task] = []  # closed, to be tallied together (:meth:`_tally_closed`)
        self._closing_calls = 0  # their calls
        self._closing_policy: Policy | None = None  # the policy they closed under
        self.tally_calls = TALLY_CALLS  # closed tasks' calls that wait to be tallied, at most
        self.failed = 0  # (closed task, detector) tallies that failed (:meth:`_tally_all`)

    # ------------------------------------------------------------------ input

    def _prices_of(self, policy: Policy) -> InputPrices:
        """The prices of the catalog in force (a policy reload brings a new catalog)."""
        prices = self._prices
        if prices is None or prices.pricer.catalog is not policy.catalog:
            prices = self._prices = InputPrices(Pricer(policy.catalog))
        return prices

    def observe(self, event: Call | Done) -> bool:
        """Take one decoded event (:mod:`tokengov.core.decoding`). False when it is a duplicate or
        older than the horizon."""
        return self.observe_all((event,)) == 1

    def observe_all(self, events: Iterable[Call | Done]) -> int:
        """Take decoded events in order (one message's, usually): what :meth:`observe` does
        to each, with the per-event work cut to the duplicate check and an append to the
        event's task; the workflows' facts are counted per task once per batch. Returns how
        many were taken (neither duplicates nor older than the horizon)."""
        policy = self.policy
        if policy is not self._closing_policy:
            self._closing_under(policy)
        horizon = policy.debt.horizon
        stats = self.stats
        seen = self._seen
        minutes = self._seen_minutes
        tasks = self._tasks
        first_seen = self._first_seen
        # no watermark yet: nothing is late (every ts is above _NEVER, none below)
        watermark = _NEVER if self.watermark is None else self.watermark
        cutoff = _NEVER if watermark is _NEVER else watermark - horizon
        self._stamp = stamp = self._stamp + 1
        touched: list[_Task] = []
        # the minute of the event before (none yet), and its ids in ``minutes``
        minute: int | None = None
        ids: list[str] = []
        # taken: the ids added to ``seen``; calls: those taken less the outcomes
        seen_before, outcomes_before = len(seen), stats.outcomes
        try:
            for event in events:
                event_id = event.event_id
                if event_id in seen:
                    stats.duplicates += 1
                    continue
                ts = event.ts
                if ts < cutoff:
                    stats.late += 1
                    log.debug("debt: event %s is older than the horizon; not judged", event_id)
                    continue
                seen[event_id] = ts
                if event.ts_ms // 60_000 != minute:
                    minute = event.ts_ms // 60_000
                    ids = minutes[minute]
                ids.append(event_id)
                if type(event) is not Call:  # an outcome (Done)
                    stats.outcomes += 1
                    task = tasks.pop(event.task_id, None)
                    if task is not None:
                        self._close(task)
                    continue
                if ts > watermark:
                    watermark = ts
                    cutoff = ts - horizon
                workflow = event.workflow
                if workflow not in first_seen:
                    first_seen[workflow] = ts
                task_id = event.task_id
                task = tasks.get(task_id)
                if task is None:
                    owner = policy.owner_team(workflow) or event.team
                    task = tasks[task_id] = _Task(owner, workflow)
                    task.stamp = stamp
                    touched.append(task)
                elif task.stamp != stamp:
                    task.stamp = stamp
                    touched.append(task)
                held = task.calls
                held.append(event)
                if workflow != task.workflow:
                    task.mixed = True
                if len(held) >= MAX_TASK_CALLS:
                    self._close(tasks.pop(task_id))
        finally:
            taken = len(seen) - seen_before
            stats.observed_calls += taken - (stats.outcomes - outcomes_before)
            self.watermark = None if watermark is _NEVER else watermark
            for task in touched:
                if task.counted != len(task.calls):  # (a task closed since is counted)
                    self._count(task)
            if self._closing_calls >= self.tally_calls:
                self._tally_closed()
        return taken

    def _count(self, task: _Task) -> None:
        """Count the task's calls not counted yet in their workflows' facts."""
        held = task.calls
        new = held[task.counted :] if task.counted else held
        if not new:
            return
        task.counted = len(held)
        last = max(map(_ts_of, new))
        if last > task.last_ts:
            task.last_ts = last
        calls, last_seen, dirty = self._calls, self._last_seen, self._dirty
        if not task.mixed:
            workflow = task.workflow
            calls[workflow] = calls.get(workflow, 0) + len(new)
            if last > last_seen.get(workflow, _EPOCH):
                last_seen[workflow] = last
            dirty.add(workflow)
            return
        for call in new:  # a task whose calls name more than one workflow: each its own
            workflow = call.workflow
            calls[workflow] = calls.get(workflow, 0) + 1
            if call.ts > last_seen.get(workflow, _EPOCH):
                last_seen[workflow] = call.ts
            dirty.add(workflow)

    # ------------------------------------------------------------ task tallies

    def _tally_all(
        self, tasks: list[_Task], at: TallyAt, policy: Policy, *, provisional: bool = False
    ) -> None:
        """Add the tasks' sums into the tallies ``at`` gives: per detector, the tasks whose
        sums go into the same buckets (team, workflow, bucket start) together, in their
        order (:meth:`Detector.tally_batch`), so each tally takes every task's sums in the
        order the tasks came, as one task at a time would add them. A detector that fails on
        a batch (a bug) has what it added to the batch's tallies taken back and adds its tasks
        one at a time (:meth:`_tally_each`): what fails then costs that task's sums of that
        detector alone (counted in ``failed``, unless ``provisional``: an open task is tallied
        again at every ``take`` and counted when it closes), never another task's nor another
        detector's."""
        contexts = self._contexts
        if contexts.policy is not policy:  # a policy reload: the contexts of the new one
            contexts = self._contexts = _Contexts(policy)
        prices = self._prices_of(policy)
        spans = self._bucket_spans  # size → the [start, end) of the last bucket found
        ordered = [in_order(task.calls) for task in tasks]
        by_size: dict[timedelta, list[Detector]] = {}
        for detector in self.detectors:
            by_size.setdefault(detector.bucket, []).append(detector)
        for size, detectors in by_size.items():
            groups: dict[tuple[str, str, datetime], list[list[Call]]] = {}
            for task, calls in zip(tasks, ordered, strict=True):
                if not calls:
                    continue
                last_ts = task.last_ts
                span = spans.get(size)
                if span is None or not span[0] <= last_ts < span[1]:
                    start = _bucket_start(last_ts, size)
                    span = spans[size] = (start, start + size)
                key = (task.team, task.workflow, span[0])
                group = groups.get(key)
                if group is None:
                    groups[key] = [calls]
                else:
                    group.append(calls)
            for (team, workflow, start), group in groups.items():
                ctx = contexts.get(workflow)
                if ctx is None:
                    ctx = contexts[workflow] = TaskContext(policy.debt, policy.profile(workflow))
                batch = TaskBatch(group, prices)
                for detector in detectors:
                    saved: Saved = {}
                    try:
                        detector.tally_batch(
                            batch, ctx, at(team, workflow, detector.name, start, saved)
                        )
                    except Exception:
                        _restore(saved)
                        log.warning(
                            "debt: %s failed on %d task(s) of workflow %s together; "
                            "tallying them one at a time",
                            detector.name,
                            len(group),
                            workflow,
                            exc_info=True,
                        )
                        self._tally_each(
                            detector, batch, ctx, at, (team, workflow, start), provisional
                        )

    def _tally_each(
        self,
        detector: Detector,
        batch: TaskBatch,
        ctx: TaskContext,
        at: TallyAt,
        where: tuple[str, str, datetime],
        provisional: bool,
    ) -> None:
        """``detector``'s sums of the batch's tasks, one task at a time; a task it fails on
        adds nothing (what it had added is taken back)."""
        team, workflow, start = where
        for index in range(len(batch.tasks)):
            saved: Saved = {}
            try:
                detector.tally_task(
                    batch.task(index), ctx, at(team, workflow, detector.name, start, saved)
                )
            except Exception:
                _restore(saved)
                if not provisional:
                    self.failed += 1
                log.exception(
                    "debt: a task of workflow %s could not be tallied by %s",
                    workflow,
                    detector.name,
                )

    def _tally_closed(self) -> None:
        """Tally the tasks closed since the last call, together (:meth:`_tally_all`), under the
        policy they closed under. They wait for it until they hold :data:`TALLY_CALLS` calls,
        the next :meth:`take` or :meth:`handover`, or a new policy (:meth:`_closing_under`):
        what a bucket adds is the same either way, every task's sums in the order the tasks
        closed (:meth:`Detector.tally_batch`); only :attr:`failed` is counted when they are."""
        closing = self._closing
        if closing:
            self._closing = []
            self._closing_calls = 0
            policy = self._closing_policy
            self._tally_all(
                closing, _closed(self._buckets), self.policy if policy is None else policy
            )

    def _closing_under(self, policy: Policy) -> None:
        """Tasks close under ``policy`` from now on: those closed under another are tallied
        first, under it."""
        self._tally_closed()
        self._closing_policy = policy

    def _close(self, task: _Task) -> None:
        """Count the task's calls, and keep it to be tallied (:meth:`_tally_closed`)."""
        self._count(task)
        self.stats.tasks_closed += 1
        self._dirty.add(task.workflow)
        self._closing.append(task)
        self._closing_calls += len(task.calls)

    # ------------------------------------------------------------------ output

    def take(self) -> list[WorkflowTallies]:
        """Close idle tasks, evict what left the horizon, and return the tallies of every
        workflow that changed since the last take (a workflow with nothing left in the
        horizon comes with no buckets: its share is gone)."""
        if self.watermark is None:
            return []
        policy = self.policy
        if policy is not self._closing_policy:
            self._closing_under(policy)
        debt = policy.debt
        watermark = self.watermark
        self._close_idle(watermark - debt.task_idle)
        self._tally_closed()
        self._evict(watermark)
        dirty, self._dirty = self._dirty, set()
        if not dirty:
            return []
        out = {
            w: WorkflowTallies(
                w, self._last_seen[w], self._first_seen[w], self._calls.get(w, 0), {}
            )
            for w in sorted(dirty)
            if w in self._first_seen
        }
        for key, held in self._buckets.items():
            share = out.get(key[1])
            if share is not None:
                share.buckets[key] = dict(held)
        # The open tasks' tallies go into copies: the closed buckets above are this partition's
        # own Tally objects, and a provisional tally added into them would be counted again
        # when its task closes.
        copied: set[tuple[Key, datetime]] = set()
        open_tasks: dict[str, list[_Task]] = {}
        for task in self._tasks.values():
            if task.workflow in out:
                open_tasks.setdefault(task.workflow, []).append(task)
        for workflow, waiting in open_tasks.items():
            self._tally_all(
                waiting, _provisional(out[workflow].buckets, copied), policy, provisional=True
            )
        return list(out.values())

    def _close_idle(self, cutoff: datetime) -> None:
        idle = [task_id for task_id, task in self._tasks.items() if task.last_ts < cutoff]
        for task_id in idle:
            self._close(self._tasks.pop(task_id))

    def _evict(self, watermark: datetime) -> None:
        horizon = self.policy.debt.horizon
        self._evict_seen(watermark - horizon)
        reach = {d.name: (d.retention(self.policy.debt), d.bucket) for d in self.detectors}
        for key in list(self._buckets):
            retention, size = reach.get(key[3], (horizon, timedelta(minutes=1)))
            cutoff = watermark - retention
            held = self._buckets[key]
            kept = {s: t for s, t in held.items() if s + size > cutoff}
            if len(kept) != len(held):
                self._dirty.add(key[1])
            if kept:
                self._buckets[key] = kept
            else:
                del self._buckets[key]

    def _evict_seen(self, cutoff: datetime) -> None:
        """Forget the event ids older than ``cutoff``: every id of the minutes before its
        minute, and those of its minute that are older; the others stay, in their order."""
        seen, minutes = self._seen, self._seen_minutes
        last = (cutoff - _EPOCH) // _MINUTE
        for minute in [m for m in minutes if m <= last]:
            ids = minutes.pop(minute)
            if minute < last:
                for event_id in ids:
                    del seen[event_id]
                continue
            kept = []
            for event_id in ids:
                if seen[event_id] < cutoff:
                    del seen[event_id]
                else:
                    kept.append(event_id)
            if kept:
                minutes[minute] = kept

    @property
    def open_tasks(self) -> int:
        return len(self._tasks)

    # ------------------------------------------------------------------ handover

    def handover(self, next_offset: int) -> bytes:
        """This partition's whole state, read up to (not including) ``next_offset``, for the
        worker that takes the partition over (:meth:`restore`)."""
        self._tally_closed()
        return codec.dumps(
            {
                "next_offset": next_offset,
                "watermark_us": None if self.watermark is None else wire.micros(self.watermark),
                "seen": [[e, wire.micros(ts)] for e, ts in self._seen.items()],
                "tasks": [
                    [
                        task_id,
                        t.team,
                        t.workflow,
                        wire.micros(t.last_ts),
                        [wire.encode_call(c) for c in t.calls],
                    ]
                    for task_id, t in self._tasks.items()
                ],
                "buckets": wire.encode_buckets(self._buckets),
                "workflows": [
                    [w, wire.micros(first), wire.micros(self._last_seen[w]), self._calls.get(w, 0)]
                    for w, first in self._first_seen.items()
                ],
                "stats": asdict(self.stats),
            }
        )

    def restore(self, doc: dict[str, Any]) -> None:
        """Take over the state of a :meth:`handover` (every workflow is published again)."""
        wm = doc["watermark_us"]
        self.watermark = None if wm is None else wire.from_micros(wm)
        self._seen = {e: wire.from_micros(ts) for e, ts in doc["seen"]}
        self._seen_minutes = defaultdict(list)
        for event_id, ts in self._seen.items():
            self._seen_minutes[(ts - _EPOCH) // _MINUTE].append(event_id)
        self._tasks = {}
        for task_id, team, workflow, last_us, calls in doc["tasks"]:
            decoded = [wire.decode_call(c) for c in calls]
            task = self._tasks[task_id] = _Task(team, workflow, decoded, wire.from_micros(last_us))
            task.mixed = any(c.workflow != workflow for c in decoded)
        self._buckets = wire.decode_buckets(doc["buckets"])
        self._closing, self._closing_calls = [], 0  # (their tallies would go into the old buckets)
        for workflow, first_us, last_us, calls in doc["workflows"]:
            self._first_seen[workflow] = wire.from_micros(first_us)
            self._last_seen[workflow] = wire.from_micros(last_us)
            self._calls[workflow] = int(calls)
        self.stats = EngineStats(**doc["stats"])
        self._dirty = set(self._first_seen)


class DebtJudge(_PolicySource):
    """Stage 2: the latest :class:`WorkflowTallies` of every partition, summed and judged per
    (team, workflow, agent, detector). ``apply`` each share as it arrives; ``flush(now)`` on a
    timer."""

    def __init__(
        self,
        policy: Policy | PolicyHolder,
        clock: Callable[[], datetime] = utcnow,
        detectors: Sequence[Detector] | None = None,
    ) -> None:
        super().__init__(policy, detectors)
        self._clock = clock
        self._shares: dict[str, dict[int, WorkflowTallies]] = {}  # workflow → partition → share
        self._standing: dict[Key, _Standing] = {}

    def apply(self, partition: int, share: WorkflowTallies) -> None:
        """The latest tallies of ``share.workflow`` from events partition ``partition``."""
        if share.buckets:
            self._shares.setdefault(share.workflow, {})[partition] = share
        else:
            self.drop(partition, share.workflow)

    def drop(self, partition: int, workflow: str) -> None:
        """Partition ``partition`` holds nothing of ``workflow`` any more."""
        shares = self._shares.get(workflow)
        if shares is not None:
            shares.pop(partition, None)
            if not shares:
                del self._shares[workflow]

    def forget(self, keep: Callable[[str], bool]) -> None:
        """Drop the workflows ``keep`` rejects (their judge is now another worker's)."""
        for workflow in [w for w in self._shares if not keep(w)]:
            del self._shares[workflow]
        for key in [k for k in self._standing if not keep(k[1])]:
            del self._standing[key]

    @property
    def workflows(self) -> int:
        return len(self._shares)

    def flush(self, now: datetime | None = None) -> FlushResult:
        """Judge every key over its horizon; return the findings due and the alerts."""
        now = now or self._clock()
        result = FlushResult()
        policy = self.policy
        debt = policy.debt
        merged: dict[Key, dict[datetime, Tally]] = {}
        facts: dict[str, tuple[datetime, timedelta, int]] = {}  # watermark, span, calls
        for workflow, shares in self._shares.items():
            watermark = max(s.watermark for s in shares.values())
            first = min(s.first_seen for s in shares.values())
            span = max(debt.min_span, min(debt.horizon, watermark - first))
            facts[workflow] = (watermark, span, sum(s.calls for s in shares.values()))
            for share in shares.values():
                for key, buckets in share.buckets.items():
                    into = merged.setdefault(key, {})
                    for start, tally in buckets.items():
                        _merge_at(into, start, tally)
        by_name = {d.name: d for d in self.detectors}
        for key in sorted(set(merged) | set(self._standing), key=_key_order):
            workflow, name = key[1], key[3]
            detector = by_name.get(name)
            verdict: Verdict | None = None
            fact = facts.get(workflow)
            if detector is not None and key in merged and fact is not None:
                ctx = JudgeContext(debt, fact[1], policy.profile(workflow))
                verdict = detector.judge(sorted(merged[key].items(), key=lambda kv: kv[0]), ctx)
            if verdict is not None and verdict.waste_tokens_per_day < debt.min_waste_tokens_per_day:
                verdict = None
            watermark, generation = (fact[0], fact[2]) if fact else (now, 0)
            self._decide(key, detector, verdict, watermark, generation, now, result)
        return result

    def _decide(
        self,
        key: Key,
        detector: Detector | None,
        verdict: Verdict | None,
        watermark: datetime,
        generation: int,
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


class DebtEngine:
    """Both stages in one process, over one partition: ``observe(event)`` every event;
    ``flush(now)`` on a timer (tests, the bench's baseline, ``tokengov debt report``)."""

    def __init__(
        self,
        policy: Policy | PolicyHolder,
        clock: Callable[[], datetime] = utcnow,
        detectors: Sequence[Detector] | None = None,
    ) -> None:
        self.tallies = DebtTallies(policy, detectors)
        self.judge = DebtJudge(policy, clock, self.tallies.detectors)

    @property
    def policy(self) -> Policy:
        return self.tallies.policy

    @property
    def detectors(self) -> list[Detector]:
        return self.tallies.detectors

    @property
    def stats(self) -> EngineStats:
        return self.tallies.stats

    @property
    def watermark(self) -> datetime | None:
        return self.tallies.watermark

    @property
    def open_tasks(self) -> int:
        return self.tallies.open_tasks

    def observe(self, event: Call | Done) -> bool:
        return self.tallies.observe(event)

    def flush(self, now: datetime | None = None) -> FlushResult:
        for share in self.tallies.take():
            self.judge.apply(0, share)
        return self.judge.flush(now)
