"""Stage 1: everything that happens to the events of one partition (pure, no I/O).

For each event, in partition order: deduplicate by ``event_id``; price it;
update the task's state (calls, tool calls, hops, retries, tokens, largest
context) and check it against the workflow's cost profile (runaway, retry
storm, loop); add it to the partition's cumulative partials (windows,
budgets, unit metrics, missing profiles, unpriced models) that the
aggregator (stage 2) sums across partitions.

Re-processing is exact: an event is applied to a task only if its position is
past the task's ``applied_pos`` and to the partials only if past theirs, so
a crash between persisting one record and another neither loses nor doubles
anything (see :mod:`tokengov.streams.core.task_state`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
import orjson

from tokengov.core.calls import Call, Done
from tokengov.core.contracts import UNATTRIBUTED
from tokengov.core.policy import StreamsSettings
from tokengov.streams.core import codec
from tokengov.streams.core.clock import Clock
from tokengov.streams.core.dedup import MAX_SEEN_PER_TASK, GlobalSeen, trim_task_seen
from tokengov.streams.core.loop import check_loop
from tokengov.streams.core.output import Output
from tokengov.streams.core.partition_totals import PartitionAggregates
from tokengov.streams.core.policy_index import PolicyView
from tokengov.streams.core.retry_storm import check_retry_storm
from tokengov.streams.core.runaway import check_runaway
from tokengov.streams.core.skew import clock_skew_alert, clock_skew_fingerprint
from tokengov.streams.core.task_state import MAX_STEPS_TRACKED, TaskState
from tokengov.streams.core.timeutil import DAY_MS, HOUR_MS, MINUTE_MS, day_key, period_key

__all__ = ["AGG_KEY", "ENDED_TASK_LINGER_S", "PartitionProcessor", "position"]

log = logging.getLogger(__name__)

AGG_KEY = "agg"
TASK_PREFIX = "t|"
SEEN_PREFIX = "seen|"
ENDED_TASK_LINGER_S = 600.0
INDEX_BITS = 20
_decode = msgspec.json.decode


def position(offset: int, index: int) -> int:
    """An event's position in its partition: the message offset, then its index in the envelope."""
    return (offset << INDEX_BITS) | index


class PartitionProcessor:
    def __init__(
        self,
        partition: int,
        settings: StreamsSettings,
        clock: Clock,
        *,
        tasks: dict[str, TaskState] | None = None,
        aggregates: PartitionAggregates | None = None,
        global_seen: GlobalSeen | None = None,
    ) -> None:
        self.partition = partition
        self.clock = clock
        late_grace_ms = int(settings.late_grace.total_seconds() * 1000)
        self.tasks: dict[str, TaskState] = tasks or {}
        self.agg = aggregates or PartitionAggregates(partition, late_grace_ms)
        self.global_seen = global_seen or GlobalSeen(settings.dedup_horizon.total_seconds())
        self.dirty_tasks: set[str] = set()
        self.removed_tasks: set[str] = set()
        self.removed_seen: set[int] = set()
        self.now = clock.now()
        self.now_s = self.now.timestamp()
        self.now_ms = int(self.now_s * 1000)
        self.events_applied = 0
        self.record_errors = 0  # state records that could not be encoded or read back

    # ------------------------------------------------------------ processing

    def begin(self) -> None:
        """Read the clock once for the events that follow (eviction, clock skew)."""
        self.now = self.clock.now()
        self.now_s = self.now.timestamp()
        self.now_ms = int(self.now_s * 1000)

    def process(self, event: Call | Done, pos: int, view: PolicyView, out: Output) -> None:
        agg = self.agg
        agg.late_grace_ms = view.late_grace_ms
        task_id = event.task_id
        task = self.tasks.get(task_id)
        if task is None:
            task = self.tasks[task_id] = TaskState.new(task_id, event.team, event.workflow)
        event_id = event.event_id
        first = task.seen.get(event_id)
        if first is None and self.global_seen.buckets:
            first = self.global_seen.get(event_id)
        apply_task = pos > task.applied_pos
        apply_agg = pos > agg.applied_pos
        if first is not None and first < pos:  # a duplicate: counted once, everywhere
            if task.applied_pos < 0:  # created just now for an id of a dropped task
                del self.tasks[task_id]
            if apply_agg:
                agg.duplicates += 1
                agg.applied_pos = pos
                agg.changed = True
            return
        cost = None
        if type(event) is Call:  # priced at its ts as sent; a call without usage costs 0
            if event.usage_missing and event.cost_femto is None:
                cost = 0
            else:
                cost = view.pricer.femto(event)
        late = False
        skew_ms = event.ts_ms - self.now_ms
        if skew_ms > view.clock_ahead_ms or -skew_ms > view.clock_behind_ms:
            if apply_agg:
                self._clock_skew(event, skew_ms, view, out)
            if skew_ms > 0:  # governed at processing time: moves nobody's windows or budgets
                event = event.at(self.now)
            else:
                late = True  # far behind: late for windows, budgets and unit metrics
        if type(event) is Call:
            if apply_task:
                self._apply_to_task(task, event, pos, cost or 0, view, out)
            if apply_agg:
                if late:
                    agg.late_events += 1
                else:
                    self._apply_call_to_partials(event, cost, view)
        else:
            assert type(event) is Done
            if apply_task:
                self._apply_to_task(task, event, pos, 0, view, out)
            if apply_agg:
                if late:
                    agg.late_events += 1
                else:
                    self._apply_outcome_to_partials(task, event, pos, view)
        if apply_agg:
            agg.applied_pos = pos
            agg.changed = True
            self.events_applied += 1

    def process_batch(
        self,
        events: Sequence[tuple[int, Call | Done]],
        offset: int,
        view: PolicyView,
        out: Output,
        *,
        alert_ts_ms: list[int] | None = None,
        failures: list[tuple[int, Call | Done, Exception]] | None = None,
    ) -> None:
        """The events of one message (``(index, event)``, at ``position(offset, index)``), in
        order: exactly what :meth:`process` does with each, at a fraction of the cost.

        A call that is new (not a duplicate, not processed before), priced, carries its
        usage and is on time (no clock skew, its minute window still open: then so are its
        hour, day and budget periods) takes the fast path: its task is updated and checked
        against every limit right away (an alert names that call, with the same values),
        while its sums go to the partials once per minute window and once per (team,
        workflow, day) at the end of the message. A new outcome without clock skew is
        applied in line, as :meth:`process` would apply it. Every other event goes through
        :meth:`process`. Those sums are integers, so their order does not matter; a row is
        made (and marked changed) when the first event that adds to it is seen, so rows and
        their changed-marks come in the same order as one by one; the one float sum
        (context utilization) is added per call, in order.

        ``alert_ts_ms`` gets the time of the event behind each alert raised (latency).
        With ``failures``, an event whose processing raises is recorded there (index,
        event, exception) and the next one goes on (the adapter dead-letters it); without,
        the exception propagates, after the sums of the events before it were added.
        """
        agg = self.agg
        grace_ms = agg.late_grace_ms = view.late_grace_ms
        # on time: no clock skew (lo <= ts_ms <= hi) and the minute window still open
        # (minute >= edge, i.e. minute + MINUTE_MS >= watermark - grace: then so are its hour,
        # day and budget periods)
        lo, hi = self.now_ms - view.clock_behind_ms, self.now_ms + view.clock_ahead_ms
        tasks = self.tasks
        global_seen = self.global_seen
        femto = view.pricer.femto
        apply_to_task = self._apply_to_task
        apply_outcome = self._apply_outcome_to_partials
        window_row = agg.window
        # minute-window key → [calls, the sum of their costs, minute row, hour row, day rows]
        windows: dict[tuple[int, int, str, str, str, str], list[Any]] = {}
        # (team, workflow, day start) → day rows: [unit partial, budget rows, missing-profile
        # row or None], shared by the windows of that team, workflow and day
        days: dict[tuple[str, str, int], list[Any]] = {}
        base = offset << INDEX_BITS
        applied = agg.applied_pos
        wm = agg.watermark_ms
        edge = wm - grace_ms - MINUTE_MS
        fast = 0
        try:
            alerts = out.alerts
            alerts_before = len(alerts)
            for index, event in events:
                pos = base | index
                try:
                    cost = None
                    ts_ms = event.ts_ms
                    if type(event) is Call:
                        minute = ts_ms - ts_ms % MINUTE_MS
                        quick = (
                            lo <= ts_ms <= hi
                            and minute >= edge
                            and pos > applied
                            and not event.usage_missing
                        )
                    else:  # an outcome
                        quick = lo <= ts_ms <= hi and pos > applied
                    if quick:  # and new: neither applied nor seen in the task, nor globally
                        task = tasks.get(event.task_id)
                        if (
                            task is None
                            or (pos > task.applied_pos and event.event_id not in task.seen)
                        ) and not (
                            global_seen.buckets and global_seen.get(event.event_id) is not None
                        ):
                            cost = femto(event) if type(event) is Call else 0
                    if cost is None:  # anything else: one by one
                        agg.applied_pos, agg.watermark_ms = applied, wm
                        self.process(event, pos, view, out)
                        applied, wm = agg.applied_pos, agg.watermark_ms
                        edge = wm - grace_ms - MINUTE_MS
                    elif type(event) is Done:  # what process() does with it, in line
                        if task is None:
                            task = tasks[event.task_id] = TaskState.new(
                                event.task_id, event.team, event.workflow
                            )
                        apply_to_task(task, event, pos, 0, view, out)
                        agg.watermark_ms = wm
                        apply_outcome(task, event, pos, view)
                        if agg.watermark_ms != wm:
                            wm = agg.watermark_ms
                            edge = wm - grace_ms - MINUTE_MS
                        applied = pos
                        fast += 1
                    else:
                        assert type(event) is Call
                        team, workflow = event.team, event.workflow
                        if task is None:
                            task = tasks[event.task_id] = TaskState.new(
                                event.task_id, team, workflow
                            )
                        apply_to_task(task, event, pos, cost, view, out)
                        # the partials: rows made now, sums added at the end
                        agent, model = event.agent, event.model
                        key = (MINUTE_MS, minute, team, workflow, agent, model)
                        w = windows.get(key)
                        if w is None:
                            hour = (
                                HOUR_MS,
                                minute - minute % HOUR_MS,
                                team,
                                workflow,
                                agent,
                                model,
                            )
                            minute_row, hour_row = window_row(key), window_row(hour)
                            day_key_ = (team, workflow, ts_ms - ts_ms % DAY_MS)
                            d = days.get(day_key_)
                            if d is None:
                                d = days[day_key_] = self._day_rows(team, workflow, ts_ms, view)
                            w = windows[key] = [[event], cost, minute_row, hour_row, d]
                        else:
                            w[0].append(event)
                            w[1] += cost
                        context_window = event.context_window
                        if context_window:  # a float sum: added in order
                            utilization = event.input / context_window
                            floats = w[4][0].floats
                            floats[2] += utilization
                            if utilization > floats[3]:
                                floats[3] = utilization
                        if ts_ms > wm:
                            wm = ts_ms
                            edge = wm - grace_ms - MINUTE_MS
                        applied = pos
                        fast += 1
                except Exception as exc:
                    if failures is None:
                        raise
                    failures.append((index, event, exc))
                    applied, wm = max(applied, agg.applied_pos), max(wm, agg.watermark_ms)
                    edge = wm - grace_ms - MINUTE_MS
                if len(alerts) != alerts_before:
                    if alert_ts_ms is not None:
                        alert_ts_ms.extend([event.ts_ms] * (len(alerts) - alerts_before))
                    alerts_before = len(alerts)
        finally:
            if fast:
                agg.applied_pos, agg.watermark_ms = applied, wm
                agg.changed = True
                self.events_applied += fast
                _add_sums(windows.values())

    def _day_rows(self, team: str, workflow: str, ts_ms: int, view: PolicyView) -> list[Any]:
        """The rows a call of (team, workflow) on the day of ``ts_ms`` adds to, made (in the
        order :meth:`_apply_call_to_partials` makes them) and marked changed:
        ``[unit partial, budget rows, missing-profile row or None]``."""
        agg = self.agg
        rows: list[list[int]] = []
        for budgets in (view.team_budgets.get(team), view.workflow_budgets.get(workflow)):
            if budgets:
                for budget in budgets:
                    rows.append(
                        agg.budget_row((budget.budget_id, period_key(ts_ms, budget.period)))
                    )
        day = day_key(ts_ms)
        unit = agg.unit((workflow, day), team)
        missing = None
        if workflow != UNATTRIBUTED and workflow not in view.profiles:
            missing = agg.missing_row((workflow, day), team)
        return [unit, rows, missing]

    def _clock_skew(self, event: Call | Done, skew_ms: int, view: PolicyView, out: Output) -> None:
        """Count an event far from the processing clock; alert once per team, agent, day."""
        agg = self.agg
        if skew_ms > 0:
            agg.clock_ahead_events += 1
        else:
            agg.clock_behind_events += 1
        day = day_key(self.now_ms)
        fp = clock_skew_fingerprint(event, day)
        if fp in agg.skew_alerted:
            return
        agg.skew_alerted[fp] = self.now_ms - self.now_ms % DAY_MS + DAY_MS
        limit_ms = view.clock_ahead_ms if skew_ms > 0 else view.clock_behind_ms
        out.alert(clock_skew_alert(event, skew_ms, limit_ms, day, self.now))

    def _apply_to_task(
        self,
        task: TaskState,
        event: Call | Done,
        pos: int,
        cost: int,
        view: PolicyView,
        out: Output,
    ) -> None:
        """The event's claim on its task (its id's position, ``applied_pos``, the touched time,
        the attribution a task without one takes from its first event that has it, the dirty
        mark), then an outcome's record (the first one counts) or a call's counters and its
        checks against the workflow's limits (``cost``: the call's, in femto-USD)."""
        event_id = event.event_id
        seen = task.seen
        seen[event_id] = pos
        task.applied_pos = pos
        task.touched_s = self.now_s
        if task.team == UNATTRIBUTED and event.team != UNATTRIBUTED:
            task.team = event.team
        if task.workflow == UNATTRIBUTED and event.workflow != UNATTRIBUTED:
            task.workflow = event.workflow
        self.dirty_tasks.add(task.task_id)
        if len(seen) > MAX_SEEN_PER_TASK:
            trim_task_seen(task, self.global_seen, self.now_s)
        if type(event) is not Call:  # an outcome: the first one counts
            if task.outcome is None:
                task.outcome = event.status
                task.outcome_pos = pos
                task.outcome_tokens = task.tokens
                task.outcome_cost_femto = task.cost_femto
            return
        ts_ms = event.ts_ms
        calls = task.calls
        if calls == 0 or ts_ms < task.first_ts_ms:
            task.first_ts_ms = ts_ms
        if ts_ms > task.last_ts_ms:
            task.last_ts_ms = ts_ms
        input_tokens = event.input
        total = input_tokens + event.output
        task.calls = calls + 1
        task.tokens += total
        task.cost_femto += cost
        if event.tool_calls:
            task.tool_calls += event.tool_calls
        attempt = event.attempt
        if attempt > 1:
            task.retries += 1
            task.retry_tokens += total
        else:
            task.first_attempt_tokens += total
        if input_tokens > task.largest_context:
            task.largest_context = input_tokens
        if event.parent_agent is not None:
            edge = f"{event.parent_agent}>{event.agent}"
            if edge not in task.hops:
                task.hops.append(edge)
                task.hop_count += 1
        step = event.step
        if attempt > 1:  # a retry: its step's attempts (retries neither extend nor break a run)
            attempts = task.record_retry(step, attempt, ts_ms)
        else:
            attempts = None
            first = task.first_ts  # when the step's first attempt happened (bounded)
            first[step] = ts_ms
            if len(first) > MAX_STEPS_TRACKED:
                del first[next(iter(first))]
            # step progress and the same-tool run (tokengov.streams.core.loop)
            progressed = step > task.max_step
            if progressed:
                task.max_step = step
            tool_name = event.tool_name
            if tool_name is None:
                task.loop_tool, task.loop_run = None, 0
            elif progressed or tool_name != task.loop_tool:
                task.loop_tool, task.loop_run = tool_name, 1
            else:
                task.loop_run += 1

        workflow = task.workflow
        # one test of every limit before the exact check (never true without a profile)
        bounds = view.limit_bounds.get(workflow, view.unprofiled_bounds)
        if (
            task.calls > bounds[0]
            or task.tool_calls > bounds[1]
            or task.hop_count > bounds[2]
            or task.retries > bounds[3]
            or task.tokens > bounds[4]
            or task.largest_context > bounds[5]
        ):
            team = self._team(task, view)
            for alert, decision in check_runaway(
                task,
                view.profiles[workflow],
                view.limits[workflow],
                team=team,
                event_ts=event.ts,
                event_id=event_id,
                now=self.clock.now(),
            ):
                out.alert(alert, decision)
        if attempts is not None:
            storm = check_retry_storm(
                task,
                event.step,
                attempts,
                view.profiles.get(workflow),
                view.settings,
                team=self._team(task, view),
                event_ts=event.ts,
                event_id=event_id,
            )
            if storm is not None:
                out.alert(storm)
        if task.loop_run > bounds[6]:
            loop = check_loop(
                task, bounds[6], team=self._team(task, view), event_ts=event.ts, event_id=event_id
            )
            if loop is not None:
                out.alert(loop)

    @staticmethod
    def _team(task: TaskState, view: PolicyView) -> str:
        if task.team != UNATTRIBUTED:
            return task.team
        profile = view.profiles.get(task.workflow)
        return profile.team if profile is not None else task.team

    def _apply_call_to_partials(self, event: Call, cost: int | None, view: PolicyView) -> None:
        agg = self.agg
        ts_ms = event.ts_ms
        late = False
        total = event.input + event.output
        unpriced = cost is None
        if unpriced:
            cost = 0
        assert cost is not None
        retry = event.attempt > 1
        error = event.status != "ok"
        team, workflow, model = event.team, event.workflow, event.model
        comps = event.components
        grace_edge = agg.watermark_ms - agg.late_grace_ms  # open while end >= this
        for size in (MINUTE_MS, HOUR_MS):
            start = ts_ms - ts_ms % size
            if start + size < grace_edge:
                late = True
                continue
            key = (size, start, team, workflow, event.agent, model)
            row = agg.windows.get(key)
            if row is None:
                row = agg.window(key)
            else:
                agg.dirty_windows.add(key)
            row[0] += 1
            row[1] += event.input
            row[2] += event.output
            row[3] += event.cached_input
            row[4] += event.cache_write
            row[5] += event.reasoning
            row[6] += comps[0]
            row[7] += comps[1]
            row[8] += comps[2]
            row[9] += comps[3]
            row[10] += comps[4]
            row[11] += comps[5]
            row[12] += comps[6]
            row[13] += retry
            row[14] += error
            row[15] += unpriced
            row[16] += cost
        day_start = ts_ms - ts_ms % DAY_MS
        for budgets in (view.team_budgets.get(team), view.workflow_budgets.get(workflow)):
            if budgets:
                for budget in budgets:
                    period = period_key(ts_ms, budget.period)
                    if agg.period_open(period):
                        agg.budget((budget.budget_id, period), total, cost)
                    else:
                        late = True
        if day_start + DAY_MS >= grace_edge:
            day = day_key(ts_ms)
            unit = agg.unit((workflow, day), team)
            ints, floats = unit.ints, unit.floats
            ints[0] += 1
            ints[1] += total
            if retry:
                ints[2] += total
            else:
                ints[3] += total
            unit.cost_femto += cost
            window = event.context_window
            if window:
                utilization = event.input / window
                ints[8] += 1
                floats[2] += utilization
                if utilization > floats[3]:
                    floats[3] = utilization
            if workflow != UNATTRIBUTED and workflow not in view.profiles:
                agg.missing_profile((workflow, day), team)
            if unpriced:
                agg.unpriced_call((model, day), team, total)
            if event.usage_missing:
                agg.missing_usage_call((workflow, day), team)
        else:
            late = True
        if late:
            agg.late_events += 1
        if ts_ms > agg.watermark_ms:
            agg.watermark_ms = ts_ms

    def _apply_outcome_to_partials(
        self, task: TaskState, event: Done, pos: int, view: PolicyView
    ) -> None:
        if task.outcome_pos != pos:
            return  # a second outcome for the task: the first one counts
        agg = self.agg
        ts_ms = event.ts_ms
        workflow = event.workflow if event.workflow != UNATTRIBUTED else task.workflow
        team = event.team if event.team != UNATTRIBUTED else task.team
        if ts_ms - ts_ms % DAY_MS + DAY_MS + agg.late_grace_ms < agg.watermark_ms:  # not day_open
            agg.late_events += 1
            return
        unit = agg.unit((workflow, day_key(ts_ms)), team)
        ints, floats = unit.ints, unit.floats
        profile = view.profiles.get(workflow)
        ints[4] += 1
        if event.status == "success":
            ints[5] += 1
        if event.met_quality_bar(profile.quality_bar if profile else None):
            ints[6] += 1
        if profile is not None and profile.baseline_tokens and task.outcome_tokens > 0:
            amplification = task.outcome_tokens / profile.baseline_tokens
            ints[7] += 1
            floats[0] += amplification
            if amplification > floats[1]:
                floats[1] = amplification
        if ts_ms > agg.watermark_ms:  # agg.advance
            agg.watermark_ms = ts_ms

    # ------------------------------------------------------------ housekeeping

    def sweep(self, settings: StreamsSettings) -> int:
        """Drop idle tasks (their ids go to the global dedup set) and forget old ids."""
        now_s = self.clock.now().timestamp()
        idle = settings.task_idle_timeout.total_seconds()
        ended = min(idle, ENDED_TASK_LINGER_S)
        gone = [
            t
            for t, s in self.tasks.items()
            if now_s - s.touched_s > (ended if s.outcome is not None else idle)
        ]
        for task_id in gone:
            state = self.tasks.pop(task_id)
            self.global_seen.add(state.seen, now_s)
            self.dirty_tasks.discard(task_id)
            self.removed_tasks.add(task_id)
        self.removed_seen.update(self.global_seen.expire(now_s))
        return len(gone)

    # ------------------------------------------------------------ persistence

    def take_records(self) -> list[tuple[str, bytes | None]]:
        """Records to persist since the last call, in a safe order: dedup buckets before the
        tombstones of the tasks whose ids they hold, the partials record last."""
        records: list[tuple[str, bytes | None]] = []
        for bucket in sorted(self.global_seen.dirty):
            records.append(
                (f"{SEEN_PREFIX}{bucket}", orjson.dumps(self.global_seen.buckets[bucket]))
            )
        self.global_seen.dirty.clear()
        for bucket in sorted(self.removed_seen):
            records.append((f"{SEEN_PREFIX}{bucket}", None))
        self.removed_seen.clear()
        tasks = self.tasks
        for task_id in self.dirty_tasks:
            task = tasks.get(task_id)
            if task is not None:
                try:
                    records.append((TASK_PREFIX + task_id, task.to_bytes()))
                except Exception:  # a bug: the task lives on in memory, its record is not written
                    self.record_errors += 1
                    log.exception(
                        "partition %d: task %r: state not written", self.partition, task_id
                    )
        self.dirty_tasks.clear()
        for task_id in self.removed_tasks:
            records.append((TASK_PREFIX + task_id, None))
        self.removed_tasks.clear()
        if self.agg.changed:
            records.append((AGG_KEY, codec.dumps(self.agg.to_doc())))
            self.agg.changed = False
        return records

    @classmethod
    def load(
        cls,
        partition: int,
        records: Iterable[tuple[str, bytes]],
        settings: StreamsSettings,
        clock: Clock,
    ) -> PartitionProcessor:
        """Rebuild from the latest record of every key (tombstones already removed)."""
        late_grace_ms = int(settings.late_grace.total_seconds() * 1000)
        proc = cls(partition, settings, clock)
        for key, raw in records:
            try:
                doc: Any = _decode(raw)  # exact at any size (TaskState.to_bytes)
                if key == AGG_KEY:
                    proc.agg = PartitionAggregates.from_doc(doc, late_grace_ms)
                elif key.startswith(TASK_PREFIX):
                    task = TaskState.from_doc(doc)
                    proc.tasks[task.task_id] = task
                elif key.startswith(SEEN_PREFIX):
                    proc.global_seen.load(int(key[len(SEEN_PREFIX) :]), doc)
                else:
                    log.warning("partition %d: ignoring unknown state record %r", partition, key)
            except Exception:  # one bad record must not keep the partition from starting
                proc.record_errors += 1
                log.exception(
                    "partition %d: state record %r unreadable (%d bytes), ignored",
                    partition,
                    key,
                    len(raw),
                )
        return proc


def _add_sums(windows: Iterable[list[Any]]) -> None:
    """Add the sums of a message's fast calls, per minute window, to its minute and hour
    rows and to the budget, unit and missing-profile rows of its team, workflow and day."""
    for calls, cost, minute_row, hour_row, (unit, budget_rows, missing) in windows:
        inp = out = cached = written = reasoning = retries = errors = 0
        c0 = c1 = c2 = c3 = c4 = c5 = c6 = 0
        retry_tokens = context_reports = 0
        for call in calls:
            inp += call.input
            out += call.output
            cached += call.cached_input
            written += call.cache_write
            reasoning += call.reasoning
            s0, s1, s2, s3, s4, s5, s6 = call.components
            c0 += s0
            c1 += s1
            c2 += s2
            c3 += s3
            c4 += s4
            c5 += s5
            c6 += s6
            if call.attempt > 1:
                retries += 1
                retry_tokens += call.input + call.output
            if call.status != "ok":
                errors += 1
            if call.context_window:
                context_reports += 1
        n = len(calls)
        for row in (minute_row, hour_row):  # WINDOW_FIELDS, then the cost
            row[0] += n
            row[1] += inp
            row[2] += out
            # a sum that is often 0 is tested first: a test costs a tenth of an addition
            if cached:
                row[3] += cached
            if written:
                row[4] += written
            if reasoning:
                row[5] += reasoning
            if c0:
                row[6] += c0
            if c1:
                row[7] += c1
            if c2:
                row[8] += c2
            if c3:
                row[9] += c3
            if c4:
                row[10] += c4
            if c5:
                row[11] += c5
            if c6:
                row[12] += c6
            if retries:
                row[13] += retries
            if errors:
                row[14] += errors
            row[16] += cost  # row[15], unpriced calls: none take the fast path
        tokens = inp + out
        for row in budget_rows:
            row[0] += tokens
            row[1] += cost
            row[2] += n
        ints = unit.ints
        ints[0] += n
        ints[1] += tokens
        ints[2] += retry_tokens
        ints[3] += tokens - retry_tokens
        ints[8] += context_reports
        unit.cost_femto += cost
        if missing is not None:
            missing[1] += n
