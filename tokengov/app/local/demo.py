"""``tokengov demo``: the embedded stack plus a synthetic fleet with scripted incidents.

:func:`run_demo` starts the stack (its own data directory and free ports, so it
never collides with a running ``tokengov up``), runs the fleet through the real
SDK with the guard, waits until ClickHouse holds every event the fleet emitted
and every incident has its alert, and returns what a summary needs. The CLI
prints it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from tokengov.app.fleet import INCIDENTS, Fleet, FleetReport, Incident
from tokengov.app.local.broker import free_port
from tokengov.app.local.stack import LocalStack
from tokengov.app.local.webhook_sink import WebhookSink
from tokengov.core.contracts import Alert, Decision
from tokengov.core.errors import TokenGovError
from tokengov.core.kafka import KafkaConnection, connection
from tokengov.core.kafka_logging import client_logging
from tokengov.core.policy import load_policy
from tokengov.core.settings import Settings
from tokengov.producers.emitter import TokenEmitter

__all__ = ["EXPECTED_ALERTS", "DemoResult", "IncidentCatch", "run_demo"]

log = logging.getLogger(__name__)

#: The alert that shows tokengov caught each scripted incident.
EXPECTED_ALERTS: dict[str, tuple[str, ...]] = {
    "runaway_loop": ("runaway",),
    "retry_storm": ("retry_storm",),
    "chatty_handoffs": ("debt_finding",),
    "full_history": ("debt_finding",),
    "budget_burn": ("budget_threshold",),
    "missing_profile": ("missing_cost_profile",),
    "unpriced_model": ("unpriced_model",),
}


@dataclass
class IncidentCatch:
    incident: Incident
    alerts: list[Alert] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    first_alert_at: datetime | None = None

    @property
    def caught(self) -> bool:
        return bool(self.alerts)

    @property
    def seconds_to_alert(self) -> float | None:
        if self.first_alert_at is None or self.incident.started_at is None:
            return None
        return max(0.0, (self.first_alert_at - self.incident.started_at).total_seconds())


@dataclass
class DemoResult:
    fleet: FleetReport
    catches: dict[str, IncidentCatch]
    alerts: list[Alert]
    decisions: list[Decision]
    stored_calls: int
    stored_cost_usd: Decimal
    run_started: datetime
    data_dir: Path
    bootstrap: KafkaConnection | str
    summary_rows: dict[str, list[Any]] = field(default_factory=dict)
    webhooks_received: dict[str, int] = field(default_factory=dict)
    webhooks_rejected: dict[str, int] = field(default_factory=dict)


class _TopicFollower(threading.Thread):
    """Collects alerts and decisions as they are published (assign, no group)."""

    def __init__(
        self,
        bootstrap: KafkaConnection | str,
        alerts_topic: str,
        decisions_topic: str,
        on_alert: Callable[[Alert, datetime], None],
        on_decision: Callable[[Decision], None],
    ) -> None:
        super().__init__(name="tokengov-demo-follower", daemon=True)
        self._consumer = Consumer(
            {
                **connection(bootstrap).librdkafka_config(),
                "group.id": "tokengov-demo",
                "enable.auto.commit": False,
                **client_logging(),
            }
        )
        self._topics = {alerts_topic: "alert", decisions_topic: "decision"}
        self._on_alert = on_alert
        self._on_decision = on_decision
        self._halt = threading.Event()

    def run(self) -> None:
        assignments = []
        for name in self._topics:
            metadata = self._consumer.list_topics(name, timeout=10)
            for p in metadata.topics[name].partitions:
                assignments.append(TopicPartition(name, p, OFFSET_BEGINNING))
        self._consumer.assign(assignments)
        while not self._halt.is_set():
            msg = self._consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            value, topic = msg.value(), msg.topic()
            if value is None or topic is None:
                continue
            received = datetime.now().astimezone()
            try:
                doc = orjson.loads(value)
                if self._topics[topic] == "alert":
                    self._on_alert(Alert.model_validate(doc), received)
                else:
                    self._on_decision(Decision.model_validate(doc))
            except Exception as exc:  # a message the demo cannot show: log it, keep following
                log.warning("demo: cannot read a message on %s: %s", msg.topic(), exc)
        self._consumer.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


def _match(incident: Incident, alert: Alert) -> bool:
    if alert.kind not in EXPECTED_ALERTS[incident.name]:
        return False
    if alert.kind in ("runaway", "retry_storm"):
        return alert.task_id == incident.task_id
    if alert.kind == "debt_finding":
        area = {"chatty_handoffs": "orchestration", "full_history": "context_management"}[
            incident.name
        ]
        return alert.workflow == incident.workflow and alert.labels.get("area") == area
    if alert.kind == "budget_threshold":
        return alert.team == incident.team
    if alert.kind == "unpriced_model":
        return "mistral" in (alert.labels.get("model", "") + alert.summary)
    return alert.workflow == incident.workflow


def run_demo(
    settings: Settings,
    policy_path: Path,
    *,
    duration_s: float,
    rate: float,
    seed: int,
    incidents: tuple[str, ...] = INCIDENTS,
    say: Callable[[str], None] = lambda line: None,
    worker_stdout: Any = None,
    worker_stderr: Any = None,
    should_stop: Callable[[], bool] = lambda: False,
    settle_timeout_s: float = 90.0,
) -> DemoResult:
    from tokengov.producers.guard import Guard
    from tokengov.sinks.clickhouse.reader import open_reader
    from tokengov.sinks.clickhouse.reports import ReportWindow, run_report

    def query_rows(sql: str) -> list[tuple[Any, ...]]:
        reader = open_reader(settings.clickhouse_dsn, settings.data_dir)
        try:
            return reader.query(sql).rows
        finally:
            reader.close()

    def unit_economics(since: datetime) -> list[Any]:
        reader = open_reader(settings.clickhouse_dsn, settings.data_dir)
        window = ReportWindow(
            since=since - timedelta(minutes=1),
            until=datetime.now(UTC) + timedelta(minutes=1),
            policy=policy,
        )
        try:
            return run_report("unit-economics", reader, window).dicts()
        finally:
            reader.close()

    policy = load_policy(policy_path)
    settings = settings.model_copy(update={"query_endpoint": f"127.0.0.1:{free_port()}"})
    webhooks = WebhookSink(policy)
    webhooks.start()
    stack = LocalStack(
        settings,
        policy_path,
        port=free_port(),
        worker_stdout=worker_stdout,
        worker_stderr=worker_stderr,
        env=webhooks.environment(),
    )
    alerts: list[Alert] = []
    decisions: list[Decision] = []
    catches: dict[str, IncidentCatch] = {}
    lock = threading.Lock()

    def on_alert(alert: Alert, received: datetime) -> None:
        with lock:
            alerts.append(alert)
            for catch in catches.values():
                if _match(catch.incident, alert):
                    catch.alerts.append(alert)
                    if catch.first_alert_at is None:
                        catch.first_alert_at = received

    def on_decision(decision: Decision) -> None:
        with lock:
            decisions.append(decision)
        say(
            f"[bold magenta]decision[/] {decision.action} {decision.scope}:{decision.key} — {decision.reason}"
        )

    def on_incident(incident: Incident, what: str) -> None:
        with lock:
            catches.setdefault(incident.name, IncidentCatch(incident))
            for alert in alerts:  # an alert may come before the callback registers
                if _match(incident, alert) and alert not in catches[incident.name].alerts:
                    catches[incident.name].alerts.append(alert)
        say(f"[bold cyan]fleet[/] {incident.name}: {incident.description} — {what}")

    with stack:
        info = stack.start()
        stack.wait_ready(timeout_s=120)
        say(
            f"stack up: broker {info.bootstrap}, store {info.clickhouse_dsn}, worker pid {info.worker_pid}"
        )
        follower = _TopicFollower(
            info.bootstrap, stack.topics.alerts, stack.topics.decisions, on_alert, on_decision
        )
        follower.start()
        run_started = datetime.now().astimezone()
        emitter = TokenEmitter(
            info.bootstrap, topic=stack.topics.events, spool_dir=settings.data_dir / "spool"
        )
        fleet = Fleet(
            emitter,
            policy,
            seed=seed,
            rate=rate,
            duration_s=duration_s,
            incidents=incidents,
            on_incident=on_incident,
        )
        # A throttled agent waits in its own script, not by stalling the fleet's one thread.
        guard = Guard(info.bootstrap, stack.topics, sleep=fleet.defer)
        guard.start()
        emitter.guard = guard
        try:
            report = fleet.run(should_stop=should_stop)
        finally:
            emitter.close()
            guard.close()
        say(
            f"fleet done: {report.calls:,} calls, {report.outcomes:,} outcomes; waiting for the history…"
        )

        # Everything in ClickHouse, every incident caught (or a deadline).
        deadline = time.monotonic() + settle_timeout_s
        stored_calls, stored_cost = 0, Decimal(0)
        while time.monotonic() < deadline and not should_stop():
            with contextlib.suppress(TokenGovError):
                rows = query_rows("SELECT count(), sum(cost_usd) FROM token_events FINAL")
                stored_calls, stored_cost = int(rows[0][0]), Decimal(rows[0][1] or 0)
            with lock:
                all_caught = all(c.caught for c in catches.values())
            if stored_calls >= report.calls and all_caught:
                break
            time.sleep(0.5)
        follower.stop()
        webhooks.stop()
        summary = _summary_queries(query_rows)
        try:
            summary["unit"] = unit_economics(run_started)
        except (TokenGovError, ValueError) as exc:
            log.warning("demo summary: unit economics failed: %s", exc)
        return DemoResult(
            report,
            catches,
            list(alerts),
            list(decisions),
            stored_calls,
            stored_cost,
            run_started,
            settings.data_dir,
            info.bootstrap,
            summary,
            dict(webhooks.received),
            dict(webhooks.bad_signatures),
        )


SUMMARY_SQL = {
    "by_team": (
        "SELECT team, sum(calls) AS calls, sum(input_tokens) + sum(output_tokens) AS tokens, "
        "sum(cost_usd) AS cost_usd FROM spend_daily GROUP BY team ORDER BY cost_usd DESC"
    ),
    "by_workflow": (
        "SELECT team, workflow, sum(calls) AS calls, sum(cost_usd) AS cost_usd FROM spend_daily "
        "GROUP BY team, workflow ORDER BY cost_usd DESC"
    ),
}


def _summary_queries(
    query_rows: Callable[[str], list[tuple[Any, ...]]],
) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for name, sql in SUMMARY_SQL.items():
        try:
            out[name] = query_rows(sql)
        except TokenGovError as exc:
            log.warning("demo summary query %s failed: %s", name, exc)
            out[name] = []
    return out
