"""The worker's ``/healthz``, ``/readyz`` and ``/metrics`` (docs/operations.md).

:func:`observe` starts :mod:`tokengov.core.observability`'s server for a worker app when
``TOKENGOV_METRICS_PORT`` is set, with one custom collector per role it runs. The
collectors read, at scrape time, the counters the components keep anyway (stage 1's
``stats``/``drops``, the publisher's counts, the debt engine's ``stats``, the ClickHouse
writer's ``counters`` and store ``errors``, the router's dispatcher), so nothing is counted
twice and the hot paths gain no Prometheus calls. Consumer lag of the Faust roles is
sampled on the event loop every :data:`LAG_INTERVAL_S` (aiokafka is not called from the
HTTP thread); the sink's from its own consumer.

Every family's name and labels are listed in docs/operations.md; the alerting rules in
deploy/prometheus/rules.yml and the "tokengov pipeline" dashboard use them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import faust
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tokengov.core.observability import (
    HealthServer,
    ReadinessCheck,
    histogram_family,
    serve_observability,
)
from tokengov.core.worker_context import PolicyHolder, WorkerContext

__all__ = [
    "LAG_INTERVAL_S",
    "ConsumerLag",
    "DebtCollector",
    "PolicyCollector",
    "RouterCollector",
    "SinkCollector",
    "StreamsCollector",
    "WorkerCollector",
    "observe",
]

log = logging.getLogger(__name__)

LAG_INTERVAL_S = 5.0


def _counter(name: str, doc: str, labels: Sequence[str] = ()) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, labels=list(labels))


def _gauge(name: str, doc: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


@dataclass
class ConsumerLag:
    """Messages behind the end of each assigned partition, per consumer group: sampled on
    the event loop (Faust) or read from the sink's consumer; rendered at scrape time."""

    group: str
    lag: dict[tuple[str, int], int] = field(default_factory=dict)
    assigned: bool = False  # the first assignment has completed (readiness)

    def sample_faust(self, app: faust.App) -> None:
        consumer = app.consumer
        # Faust's own record of what it committed (the next offset to read); not in its stubs
        offsets: Mapping[Any, int | None] = getattr(consumer, "_committed_offset", {})
        lag: dict[tuple[str, int], int] = {}
        for tp in consumer.assignment():
            committed = offsets.get(tp)
            try:
                high = consumer.highwater(tp)
            except Exception:  # not fetched yet (aiokafka raises on an unknown partition)
                high = None
            if high is not None and committed is not None:
                lag[(tp.topic, tp.partition)] = max(0, high - committed)
        self.lag = lag

    def family(self) -> GaugeMetricFamily:
        family = _gauge(
            "tokengov_consumer_lag_messages",
            "Messages between the consumer group's committed offset and the end of each "
            "assigned partition.",
            ("group", "topic", "partition"),
        )
        for (topic, partition), lag in sorted(self.lag.items()):
            family.add_metric([self.group, topic, str(partition)], lag)
        return family


class StreamsCollector(Collector):
    """Stage 1 and 2 of the streams role (tokengov/streams/role.py)."""

    def __init__(self, role: Any) -> None:
        self.role = role

    def collect(self) -> Iterator[Any]:
        stage1, publisher = self.role.stage1, self.role.publisher
        stats = dict(stage1.stats)
        events = _counter(
            "tokengov_stream_events_total",
            "Events through stage 1 by outcome: processed (counted), duplicate (an event_id "
            "seen before), dead_lettered (messages or items sent to the dead-letter topic).",
            ("outcome",),
        )
        events.add_metric(["processed"], stats["events"] - stats["duplicates"])
        events.add_metric(["duplicate"], stats["duplicates"])
        events.add_metric(["dead_lettered"], stats["dead_lettered"])
        yield events
        messages = _counter(
            "tokengov_stream_messages_total",
            "Kafka messages of tokengov.events read by stage 1, and those retried or skipped "
            "(dead-lettered whole after max_message_attempts).",
            ("outcome",),
        )
        for outcome, key in (("read", "messages"), ("retried", "retried"), ("skipped", "skipped")):
            messages.add_metric([outcome], stats[key])
        yield messages
        yield _dead_letters("streams", dict(stage1.drops))
        errors = _counter(
            "tokengov_stream_state_errors_total",
            "Stage-1 state records or partials that could not be encoded, written or read.",
        )
        errors.add_metric([], stats["state_errors"])
        yield errors
        alerts = _counter(
            "tokengov_alerts_published_total", "Alerts published, by kind.", ("kind",)
        )
        for kind, count in sorted(publisher.alert_kinds.items()):
            alerts.add_metric([kind], count)
        yield alerts
        decisions = _counter(
            "tokengov_decisions_published_total", "Decisions published, by action.", ("action",)
        )
        for action, count in sorted(publisher.decision_actions.items()):
            decisions.add_metric([action], count)
        yield decisions
        yield histogram_family(
            "tokengov_event_to_alert_seconds",
            "From the event time (ts) of the event that raised an alert to the alert "
            "being published (stage-1 alerts: runaways, retry storms, loops).",
            {(): stage1.alert_latency},
        )
        yield from self._budgets()

    def _budgets(self) -> Iterator[GaugeMetricFamily]:
        ratio = _gauge(
            "tokengov_budget_spent_ratio",
            "Spent fraction of each budget's limit in its current periods (1 = at the "
            "limit), from the stage-2 aggregator (served by the worker that owns it).",
            ("budget", "period", "unit"),
        )
        spent = _gauge(
            "tokengov_budget_spent_usd",
            "USD spent against each budget per period.",
            ("budget", "period"),
        )
        aggregator = getattr(self.role.stage2, "aggregator", None)
        budgets = self.role.views.view.budgets
        if aggregator is not None:
            for (budget_id, period), agg in sorted(dict(aggregator.budgets).items()):
                spent.add_metric([budget_id, period], float(agg.cost_usd))
                budget = budgets.get(budget_id)
                if budget is None:
                    continue
                if budget.limit_usd is not None:
                    ratio.add_metric(
                        [budget_id, period, "usd"], float(agg.cost_usd / budget.limit_usd)
                    )
                if budget.limit_tokens is not None:
                    ratio.add_metric(
                        [budget_id, period, "tokens"], agg.tokens / budget.limit_tokens
                    )
        yield ratio
        yield spent


class DebtCollector(Collector):
    """The token-debt role (tokengov/streams/debt/role.py)."""

    def __init__(self, role: Any) -> None:
        self.role = role

    def collect(self) -> Iterator[Any]:
        stats = self.role.stats  # summed over the partitions it holds
        events = _counter(
            "tokengov_debt_events_total",
            "Events judged by the token-debt detectors, by outcome.",
            ("outcome",),
        )
        for outcome, value in (
            ("observed", stats.observed_calls),
            ("outcome", stats.outcomes),
            ("duplicate", stats.duplicates),
            ("late", stats.late),
            ("undecodable", self.role.undecodable),  # dead-lettered by the streams role
            ("failed", self.role.failed),
        ):
            events.add_metric([outcome], value)
        yield events
        findings = _counter("tokengov_findings_published_total", "Token-debt findings published.")
        findings.add_metric([], self.role.findings_sent)
        yield findings
        shares = _counter(
            "tokengov_debt_tallies_published_total",
            "Per-partition token-debt tallies published to the workflow stage (stage 1 → 2).",
        )
        shares.add_metric([], self.role.shares_sent)
        yield shares
        handovers = _counter(
            "tokengov_debt_handovers_total",
            "Stage-1 handovers on a rebalance, by result: restored by the new owner, or failed "
            "(not sent; the new owner falls back to the stored history).",
            ("result",),
        )
        handovers.add_metric(["restored"], self.role.handovers_restored)
        handovers.add_metric(["failed"], self.role.handovers_failed)
        yield handovers


class SinkCollector(Collector):
    """The ClickHouse writer (tokengov/sinks/clickhouse/writer.py) and its store."""

    def __init__(self, role: Any, lag: ConsumerLag) -> None:
        self.role = role
        self.lag = lag

    def collect(self) -> Iterator[Any]:
        writer = self.role.writer
        c = writer.counters
        rows = _counter(
            "tokengov_sink_rows_inserted_total", "Rows inserted into ClickHouse, by table.",
            ("table",),
        )  # fmt: skip
        for table, count in sorted(dict(c.rows_inserted).items()):
            rows.add_metric([table], count)
        yield rows
        for name, doc, value in (
            ("tokengov_sink_messages_total", "Kafka messages read by the writer.", c.messages),
            ("tokengov_sink_flushes_total", "Flushes committed (inserted, then offsets committed).", c.flushes),
            ("tokengov_sink_flush_retries_total", "Flush attempts ClickHouse did not acknowledge (retried).", c.retries),
            ("tokengov_sink_backpressure_pauses_total", "Times consumption was paused because ClickHouse did not acknowledge.", c.pauses),
            ("tokengov_sink_duplicates_skipped_total", "Events already stored, skipped (replays, producer retries).", c.duplicates_skipped),
            ("tokengov_sink_commit_failures_total", "Offset commits that failed (the flush is replayed, exactly).", c.commit_failures),
            ("tokengov_sink_lookups_in_memory_total", "Duplicate lookups settled in memory (the table held exactly this writer's rows in the flush's ranges).", c.lookups_in_memory),
        ):  # fmt: skip
            family = _counter(name, doc)
            family.add_metric([], value)
            yield family
        yield _dead_letters("sink", {"rejected": c.dead_lettered})
        skipped = _counter(
            "tokengov_sink_events_skipped_total",
            "Events the writer did not store, by reason: invalid (the streams dead-letter "
            "them), tombstone.",
            ("reason",),
        )
        skipped.add_metric(["invalid"], c.invalid_events)
        skipped.add_metric(["tombstone"], c.tombstones)
        yield skipped
        yield histogram_family(
            "tokengov_sink_flush_seconds",
            "From a flush's first insert attempt to its offsets committed (retries included).",
            {(): c.flush_latency},
        )
        errors = _counter(
            "tokengov_clickhouse_errors_total",
            "Errors ClickHouse (or the connection to it) answered, by ClickHouse error code "
            '("none": no code, e.g. a refused connection).',
            ("code",),
        )
        for code, count in sorted(dict(self.role.store.errors).items()):
            errors.add_metric([code], count)
        yield errors
        paused = _gauge(
            "tokengov_sink_paused", "1 while consumption is paused (backpressure), else 0."
        )
        paused.add_metric([], 1 if writer.paused else 0)
        yield paused
        self.lag.lag = writer.lag()
        yield self.lag.family()


class RouterCollector(Collector):
    """The alert router (tokengov/sinks/router/)."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Any]:
        router = self.runtime.router
        results = _counter(
            "tokengov_notifications_total",
            "Notifications finished, by receiver and result: delivered, or abandoned "
            "(dead-lettered after the retries; raises receiver_failing).",
            ("receiver", "result"),
        )
        counters = _counter(
            "tokengov_router_alerts_total",
            "Alerts seen by the router, by outcome (ingested, silenced, inhibited, ...).",
            ("outcome",),
        )
        invalid = undeliverable = 0
        if router is not None:
            dispatcher = router.dispatcher
            for (receiver, result), count in sorted(dict(dispatcher.results).items()):
                results.add_metric([receiver, result], count)
            for key, count in sorted(dict(dispatcher.counters).items()):
                if key.startswith("alerts_"):
                    counters.add_metric([key.removeprefix("alerts_")], count)
            invalid, undeliverable = router.invalid_alerts, router.dead_lettered
        yield results
        yield counters
        yield _dead_letters("router", {"invalid_alert": invalid, "undeliverable": undeliverable})


class PolicyCollector(Collector):
    def __init__(self, holder: PolicyHolder) -> None:
        self.holder = holder

    def collect(self) -> Iterator[Any]:
        reloads = _counter(
            "tokengov_policy_reloads_total",
            "Policy reloads (SIGHUP) by result: applied, refused (invalid file: the old "
            "policy stays), no_file.",
            ("result",),
        )
        for result in ("applied", "refused", "no_file"):
            reloads.add_metric([result], self.holder.reloads[result])
        yield reloads
        generation = _gauge(
            "tokengov_policy_generation", "The policy in force: 1 at start, +1 per reload."
        )
        generation.add_metric([], self.holder.generation)
        yield generation


class _FaustLag(Collector):
    def __init__(self, lag: ConsumerLag) -> None:
        self.lag = lag

    def collect(self) -> Iterator[Any]:
        yield self.lag.family()


class WorkerCollector(Collector):
    """The roles' collectors as one: families several roles yield under one name (dead
    letters, consumer lag) become one family, as the exposition format requires."""

    def __init__(self, parts: Sequence[Collector]) -> None:
        self.parts = list(parts)

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for part in self.parts:
            for family in part.collect():
                known = merged.get(family.name)
                if known is None:
                    merged[family.name] = family
                else:
                    known.samples.extend(family.samples)
        yield from merged.values()


def _dead_letters(component: str, by_reason: Mapping[str, int]) -> CounterMetricFamily:
    family = _counter(
        "tokengov_dead_letters_total",
        "Messages or items sent to the dead-letter topic, by component and reason.",
        ("component", "reason"),
    )
    for reason, count in sorted(by_reason.items()):
        family.add_metric([component, reason], count)
    return family


def observe(
    app: faust.App, ctx: WorkerContext, group: str, roles: Mapping[str, Sequence[Any]]
) -> HealthServer | None:
    """Serve health and metrics for a worker app running ``roles`` (role name → what each
    register returned); ``None`` when ``TOKENGOV_METRICS_PORT`` is unset."""
    settings = ctx.settings
    if settings.metrics_port is None:
        return None
    lag = ConsumerLag(group)
    collectors: list[Collector] = [PolicyCollector(ctx.policy)]
    ready: dict[str, ReadinessCheck] = {}
    # a sink (own Kafka client) or an OTLP receiver alone has no Faust agent: no Faust consumer
    faust_consumer = not app.producer_only
    if faust_consumer:
        collectors.append(_FaustLag(lag))
        ready["partitions"] = lambda: None if lag.assigned else "waiting for the first assignment"
    for name, objects in roles.items():
        for obj in objects:
            kind = type(obj).__name__
            if kind == "StreamsRole":
                collectors.append(StreamsCollector(obj))
            elif kind == "DebtRole":
                collectors.append(DebtCollector(obj))
            elif kind == "SinkRole":
                sink_lag = ConsumerLag(obj.writer.config.group_id)
                collectors.append(SinkCollector(obj, sink_lag))
                ready["clickhouse"] = _sink_ready(obj)
            elif kind == "RouterRuntime":
                collectors.append(RouterCollector(obj))
                ready["router"] = _router_ready(obj)
            elif kind == "OtlpRuntime":
                collectors.append(_otlp_collector(obj))
                ready["otlp"] = _otlp_ready(obj)
            else:
                log.debug("role %s: %s has no metrics", name, kind)

    if faust_consumer:

        async def assigned(sender: Any, *args: Any, **kwargs: Any) -> None:
            lag.assigned = True

        app.on_partitions_assigned.connect(assigned)  # type: ignore[arg-type]  # mode's stub

        async def sample_lag() -> None:
            lag.sample_faust(app)

        app.timer(LAG_INTERVAL_S, name="tokengov.metrics.lag")(sample_lag)
    return serve_observability(
        settings.metrics_port, WorkerCollector(collectors), ready=ready, host=settings.metrics_host
    )


def _otlp_collector(runtime: Any) -> Collector:
    from tokengov.ingest.otlp.metrics import OtlpCollector

    return OtlpCollector(lambda: runtime.receiver.stats if runtime.receiver else None)


def _otlp_ready(runtime: Any) -> ReadinessCheck:
    def check() -> str | None:
        if runtime.receiver is None:
            return "the OTLP receiver is not listening (TOKENGOV_OTLP_PORT taken? see the log)"
        return None

    return check


def _sink_ready(role: Any) -> ReadinessCheck:
    def check() -> str | None:
        writer = role.writer
        if not writer.alive:
            return "the writer is not running"
        if not writer.ready.is_set():
            return "the schema is not in place yet (ClickHouse not reached)"
        if writer.paused:
            return "ClickHouse does not acknowledge (consumption paused)"
        return None

    return check


def _router_ready(runtime: Any) -> ReadinessCheck:
    def check() -> str | None:
        return None if runtime.ready.is_set() else "the router's state is not loaded yet"

    return check
